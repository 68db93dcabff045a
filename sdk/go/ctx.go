package sysgate

/*
#include <stdlib.h>
#include <sysgate.h>
*/
import "C"

import (
	"sync"
	"syscall"
	"unsafe"
)

// PathMax is how many bytes Path reads through the supervisor at most when
// no pre-read copy is there (Linux's PATH_MAX, NUL excluded).
const PathMax = 4095

// Ctx is one notification as a handler sees it: the trapped syscall, its
// arguments, and access to the trapped process's memory through the
// supervisor.
//
// The plain fields are a copy, valid forever. The methods work while the
// handler runs (from any goroutine), or, once it called Defer, until the
// deferred answer is given; afterwards they fail with an error wrapping
// syscall.ESTALE. Several goroutines may call them at once.
type Ctx struct {
	ID      uint64    // the kernel's notification id
	PID     int       // the trapped thread (in sysgate's pid namespace)
	Syscall int       // the syscall number
	Arch    uint32    // its AUDIT_ARCH_* value
	Flags   uint32    // struct seccomp_notif.flags
	IP      uint64    // instruction pointer of the trapped thread
	Args    [6]uint64 // the syscall's arguments

	reg *registration
	// mu guards c: read-locked by the accessors for the length of their C
	// call, write-locked to retire c (handler returned, answer given), so
	// a C context is never used once libsysgate may hand it to the next
	// notification.
	mu       sync.RWMutex
	c        *C.sg_ctx // nil once stale
	deferred *Deferred // made by Defer during the handler call
}

// newCtx copies the fields of c (one cgo call).
func newCtx(c *C.sg_ctx, reg *registration) *Ctx {
	var info C.struct_sg_ctx_info
	C.sg_ctx_info(c, &info)
	x := &Ctx{
		ID:      uint64(info.id),
		PID:     int(info.pid),
		Syscall: int(info.syscall),
		Arch:    uint32(info.arch),
		Flags:   uint32(info.flags),
		IP:      uint64(info.ip),
		reg:     reg,
		c:       c,
	}
	for i := range x.Args {
		x.Args[i] = uint64(info.args[i])
	}
	return x
}

// SyscallName is the name of the syscall ("openat"), or "" if unknown.
func (c *Ctx) SyscallName() string { return SyscallName(c.Syscall) }

// live read-locks c and returns its C context, or nil (unlocked) if stale.
func (c *Ctx) live() *C.sg_ctx {
	c.mu.RLock()
	if c.c == nil {
		c.mu.RUnlock()
		return nil
	}
	return c.c
}

func stale(op string) error { return &Error{Op: op, Errno: syscall.ESTALE} }

// Path is the path in argument arg (0..5): the copy the supervisor read
// when the syscall trapped, if it pre-read that argument (it does for the
// path arguments of the common file syscalls: no round trip), else the
// string at Args[arg] read through the supervisor (at most PathMax bytes).
// Like every check of the process's memory, it may differ from what the
// kernel reads later if the process changes it: Continue is never a
// security decision.
func (c *Ctx) Path(arg int) (string, error) {
	if arg < 0 || arg >= len(c.Args) {
		return "", &Error{Op: "path of an argument out of 0..5", Errno: syscall.EINVAL}
	}
	p, ok, err := c.PreRead(arg)
	if err != nil || ok {
		return p, err
	}
	return c.ReadCString(c.Args[arg], PathMax)
}

// PreRead is the path the supervisor pre-read for argument arg, and
// whether there is one; no round trip.
func (c *Ctx) PreRead(arg int) (string, bool, error) {
	if arg < 0 || arg >= len(c.Args) {
		return "", false, nil
	}
	cc := c.live()
	if cc == nil {
		return "", false, stale("pre-read path")
	}
	defer c.mu.RUnlock()
	p := C.sg_ctx_path(cc, C.uint(arg))
	if p == nil {
		return "", false, nil
	}
	return C.GoString(p), true, nil
}

// Read reads len(p) bytes of the trapped process at addr into p, through
// the supervisor (blocking this goroutine for one round trip). It returns
// the bytes read, fewer if the range ends in unmapped memory.
func (c *Ctx) Read(addr uint64, p []byte) (int, error) {
	cc := c.live()
	if cc == nil {
		return 0, stale("read memory")
	}
	defer c.mu.RUnlock()
	var buf unsafe.Pointer
	if len(p) > 0 {
		buf = unsafe.Pointer(&p[0])
	}
	r := int64(C.sg_ctx_read(cc, C.uint64_t(addr), buf, C.size_t(len(p))))
	if r < 0 {
		return 0, errorf(r, "read %d bytes at %#x", len(p), addr)
	}
	return int(r), nil
}

// ReadCString reads the NUL-terminated string at addr of the trapped
// process, at most max bytes of it (1..), through the supervisor.
func (c *Ctx) ReadCString(addr uint64, max int) (string, error) {
	if max < 1 {
		return "", &Error{Op: "read a string of at most 0 bytes", Errno: syscall.EINVAL}
	}
	cc := c.live()
	if cc == nil {
		return "", stale("read string")
	}
	defer c.mu.RUnlock()
	buf := (*C.char)(C.malloc(C.size_t(max) + 1))
	defer C.free(unsafe.Pointer(buf))
	r := int64(C.sg_ctx_read_cstr(cc, C.uint64_t(addr), buf, C.size_t(max)+1))
	if r < 0 {
		return "", errorf(r, "read string at %#x", addr)
	}
	return C.GoStringN(buf, C.int(r)), nil
}

// Write writes p at addr in the trapped process, through the supervisor:
// all of it or nothing, and only where the process itself may write.
func (c *Ctx) Write(addr uint64, p []byte) (int, error) {
	cc := c.live()
	if cc == nil {
		return 0, stale("write memory")
	}
	defer c.mu.RUnlock()
	var buf unsafe.Pointer
	if len(p) > 0 {
		buf = unsafe.Pointer(&p[0])
	}
	r := int64(C.sg_ctx_write(cc, C.uint64_t(addr), buf, C.size_t(len(p))))
	if r < 0 {
		return 0, errorf(r, "write %d bytes at %#x", len(p), addr)
	}
	return int(r), nil
}

// Emit sends record to the --audit log, as Worker.Emit of the handler's
// worker.
func (c *Ctx) Emit(record any) error {
	if c.reg == nil {
		return &Error{Op: "emit from a context without a worker", Errno: syscall.ENOTCONN}
	}
	return c.reg.worker.Emit(record)
}

// retire makes c stale: waits for the accessors in progress.
func (c *Ctx) retire() {
	c.mu.Lock()
	c.c = nil
	c.mu.Unlock()
}
