package sysgate

/*
#cgo pkg-config: sysgate
#include <stdlib.h>
#include "native.h"
*/
import "C"

import (
	"context"
	"fmt"
	"log"
	"os"
	"runtime/cgo"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// HandlerFunc decides one trapped syscall and returns the Action to take.
// It runs on one of the worker's handler threads, possibly at the same time
// as other calls (of itself too): what it shares must be safe for
// concurrent use. A panic, or an invalid Action, is a failure: it is
// logged and the registration's Policy answers; the worker keeps serving.
// It must not call runtime.Goexit (nor testing's FailNow and friends).
type HandlerFunc func(c *Ctx) Action

// MaxThreads is the most handler threads a worker may have.
const MaxThreads = 64

// Worker is a handler worker: its registrations, in chain order, and, while
// Run runs, its link to the supervisor. It serves the notifications sysgate
// routes to it when sysgate started it as a worker
// (`sysgate run --worker PROGRAM -- CMD`).
type Worker struct {
	// Name is the worker's name unless sysgate gives one
	// (SYSGATE_WORKER_NAME).
	Name string
	// Threads is the number of handler threads (1..MaxThreads): how many
	// handlers may run at once, at most what the supervisor lets the
	// worker hold. 0 keeps $SYSGATE_WORKER_THREADS, else libsysgate's
	// default (4). 1 calls one handler at a time, in arrival order.
	Threads int
	// ErrorLog receives one entry per handler failure (panic with its
	// stack, invalid action) and per failed deferred answer; nil logs to
	// os.Stderr, which sysgate forwards to its own.
	ErrorLog *log.Logger

	mu       sync.Mutex
	started  bool
	regs     []*registration
	injected func(pid, fd int, cookie uint64)

	linkMu  sync.RWMutex // guards link against Emit while the run ends
	link    *C.sg_worker // while the run runs
	stopped atomic.Bool  // Run's context is done: no more handler calls
}

type registration struct {
	worker *Worker
	nr     int
	name   string
	fn     HandlerFunc
	policy Policy
}

// NewWorker returns a worker called name, with no registrations.
func NewWorker(name string) *Worker { return &Worker{Name: name} }

// Handle registers fn for the syscall called name ("openat", or a decimal
// number), after the earlier registrations, with policy as its exception
// policy. sysgate refuses, when the worker connects, syscalls on its deny
// lists and exit/exit_group; execve, execveat, clone, clone3, fork and
// vfork may only be answered with Continue, Errno or Kill. Errors wrap
// ENOENT (unknown syscall), EINVAL (nil fn, bad policy) or EBUSY (Run was
// called).
func (w *Worker) Handle(name string, fn HandlerFunc, policy Policy) error {
	nr, err := SyscallNumber(name)
	if err != nil {
		return err
	}
	return w.HandleNr(nr, fn, policy)
}

// HandleNr is Handle with a syscall number.
func (w *Worker) HandleNr(nr int, fn HandlerFunc, policy Policy) error {
	name := SyscallName(nr)
	if name == "" {
		return &Error{Op: fmt.Sprintf("register syscall %d", nr), Errno: syscall.ENOENT}
	}
	if fn == nil || !policy.valid() {
		return &Error{Op: fmt.Sprintf("register %s: nil handler or unknown policy %d",
			name, int(policy)), Errno: syscall.EINVAL}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started {
		return &Error{Op: "register " + name + " after Run", Errno: syscall.EBUSY}
	}
	w.regs = append(w.regs, &registration{worker: w, nr: nr, name: name, fn: fn,
		policy: policy})
	return nil
}

// OnInjected sets the function told about every tracked injection of this
// worker (InjectBytes with Track): process pid (the trapped thread, as
// Ctx.PID) got fd, for the action that gave cookie. It is called once the
// supervisor installed the fd and before the child's syscall returns it,
// on the thread that receives from the supervisor, before it takes the
// next message: so its effects are in place before any handler is called
// for a later notification (a read of that fd). Keep it quick; never wait
// for a handler in it. Handlers of earlier notifications may still run,
// so what it shares with them must be safe for concurrent use. A panic in
// it is logged and ignored. Errors wrap EBUSY once Run was called.
func (w *Worker) OnInjected(fn func(pid, fd int, cookie uint64)) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started {
		return &Error{Op: "set the injection callback after Run", Errno: syscall.EBUSY}
	}
	w.injected = fn
	return nil
}

// Run connects to the supervisor (with what sysgate passed in the
// environment), registers the handlers and serves notifications until the
// supervisor ends the run: nil for a normal end. Errors wrap EPERM (not
// welcomed, e.g. a registration on the deny list), EPROTO,
// ECONNABORTED, or the link's errno; libsysgate also prints the cause on
// stderr. Call it once.
//
// When ctx is done first, Run returns ctx.Err() at once and the worker
// stops calling handlers: notifications still arriving fail (their Policy
// answers) until sysgate ends the run, after which the worker is freed in
// the background. A worker normally runs until sysgate ends it.
func (w *Worker) Run(ctx context.Context) error {
	w.mu.Lock()
	if w.started {
		w.mu.Unlock()
		return &Error{Op: "run a worker twice", Errno: syscall.EBUSY}
	}
	w.started = true
	regs := w.regs
	injected := w.injected
	w.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	if w.Threads != 0 {
		if w.Threads < 1 || w.Threads > MaxThreads {
			return &Error{Op: fmt.Sprintf("worker %q: %d threads, not 1..%d", w.Name,
				w.Threads, MaxThreads), Errno: syscall.EINVAL}
		}
		// Read by sg_worker_new, from the C environment that os.Setenv
		// updates in a cgo program.
		if err := os.Setenv("SYSGATE_WORKER_THREADS", strconv.Itoa(w.Threads)); err != nil {
			return err
		}
	}
	cname := C.CString(w.Name)
	cw := C.sg_worker_new(cname)
	C.free(unsafe.Pointer(cname))
	if cw == nil {
		return &Error{Op: fmt.Sprintf("worker %q: create", w.Name), Errno: syscall.ENOMEM}
	}
	handles := make([]cgo.Handle, 0, len(regs)+1)
	release := func() {
		C.sg_worker_free(cw)
		for _, h := range handles {
			h.Delete()
		}
	}
	for _, reg := range regs {
		h := cgo.NewHandle(reg)
		handles = append(handles, h)
		r := C.sggo_worker_on_nr(cw, C.long(reg.nr), C.uintptr_t(h), C.int(reg.policy))
		if r < 0 {
			release()
			return errorf(int64(r), "worker %q: register %s", w.Name, reg.name)
		}
	}
	if r := C.sggo_worker_set_thread_wrap(cw); r < 0 {
		release()
		return errorf(int64(r), "worker %q: handler threads", w.Name)
	}
	if injected != nil {
		h := cgo.NewHandle(w)
		handles = append(handles, h)
		if r := C.sggo_worker_on_injected(cw, C.uintptr_t(h)); r < 0 {
			release()
			return errorf(int64(r), "worker %q: injection callback", w.Name)
		}
	}

	w.linkMu.Lock()
	w.link = cw
	w.linkMu.Unlock()
	done := make(chan error, 1)
	go func() {
		r := C.sg_worker_run(cw)
		w.linkMu.Lock()
		w.link = nil
		w.linkMu.Unlock()
		// No handler or callback runs once sg_worker_run returned, so the
		// handles can go (a deferred answer reaches its worker through its
		// Ctx, not through libsysgate).
		release()
		done <- errorf(int64(r), "worker %q: run", w.Name)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		w.stopped.Store(true)
		return ctx.Err()
	}
}

// call runs reg's handler for one notification and sets its action on out:
// the body of every sg_handler_fn of this worker. 0, or 1 for a failure.
func (w *Worker) call(reg *registration, cctx *C.sg_ctx, out *C.sg_action) C.int {
	if w.stopped.Load() {
		return 1
	}
	c := newCtx(cctx, reg)
	act, failure := invoke(reg.fn, c)
	c.mu.Lock()
	deferred := c.deferred != nil
	if !deferred {
		c.c = nil // libsysgate may lend it to the next notification now
	}
	c.mu.Unlock()
	if failure != "" {
		w.reportFailure(reg, c, failure)
		return 1
	}
	if deferred {
		return 0 // out is ignored: the Deferred answers
	}
	if err := act.apply(out); err != nil {
		w.reportFailure(reg, c, err.Error())
		return 1
	}
	return 0
}

// invoke calls fn, turning a panic into its report (value and stack).
func invoke(fn HandlerFunc, c *Ctx) (act Action, failure string) {
	defer func() {
		if r := recover(); r != nil {
			failure = fmt.Sprintf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	return fn(c), ""
}

// reportFailure logs one failure of reg's handler as one entry.
func (w *Worker) reportFailure(reg *registration, c *Ctx, why string) {
	msg := fmt.Sprintf("sysgate worker %q: handler for %s (pid %d) failed, policy %s: %s",
		w.Name, reg.name, c.PID, reg.policy, why)
	w.logf("%s", msg)
}

func (w *Worker) logf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if w.ErrorLog != nil {
		w.ErrorLog.Print(msg)
		return
	}
	if len(msg) == 0 || msg[len(msg)-1] != '\n' {
		msg += "\n"
	}
	os.Stderr.WriteString(msg) // one write: one block, even from many threads
}

//export sggoHandle
func sggoHandle(h C.uintptr_t, cctx *C.sg_ctx, out *C.sg_action) C.int {
	reg := cgo.Handle(h).Value().(*registration)
	return reg.worker.call(reg, cctx, out)
}

// sggoThread runs a handler thread's body, the C function run with arg,
// from Go: the thread stays attached to the Go runtime for its whole life.
//
//export sggoThread
func sggoThread(run, arg C.uintptr_t) C.uintptr_t {
	return C.uintptr_t(uintptr(C.sggo_run(run, arg)))
}

//export sggoInjected
func sggoInjected(h C.uintptr_t, pid C.pid_t, fd C.int, cookie C.uint64_t) {
	w := cgo.Handle(h).Value().(*Worker)
	defer func() {
		if r := recover(); r != nil {
			w.logf("sysgate worker %q: OnInjected(pid %d, fd %d, cookie %d) panicked "+
				"(ignored): %v\n%s", w.Name, int(pid), int(fd), uint64(cookie), r,
				debug.Stack())
		}
	}()
	w.injected(int(pid), int(fd), uint64(cookie))
}

// SyscallNumber is the number of the native syscall called name ("openat"),
// or given as a decimal number; errors wrap ENOENT (unknown here) or EINVAL.
func SyscallNumber(name string) (int, error) {
	for i := 0; i < len(name); i++ {
		if name[i] == 0 {
			return 0, &Error{Op: fmt.Sprintf("syscall %q", name), Errno: syscall.EINVAL}
		}
	}
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	r := int64(C.sg_syscall_nr(cs))
	if r < 0 {
		return 0, errorf(r, "syscall %q", name)
	}
	return int(r), nil
}

// SyscallName is the name of native syscall nr, or "" if unknown.
func SyscallName(nr int) string {
	if nr < 0 {
		return ""
	}
	p := C.sg_syscall_name(C.long(nr))
	if p == nil {
		return ""
	}
	return C.GoString(p)
}
