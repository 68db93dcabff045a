package sysgate

/*
#include <sysgate.h>
*/
import "C"

import (
	"fmt"
	"syscall"
	"unsafe"
)

// Policy is a registration's exception policy: what answers a notification
// when its handler fails (panics, returns an invalid Action), hangs past
// sysgate's --handler-timeout, or its worker dies. The values are the C
// SDK's enum sg_exception.
type Policy int

const (
	// PolicyKill kills the sandbox (the zero value: fail closed).
	PolicyKill Policy = C.SG_EXC_KILL
	// PolicyDenyEPERM fails the syscall with EPERM.
	PolicyDenyEPERM Policy = C.SG_EXC_DENY_EPERM
	// PolicyContinue lets the syscall run (explicit fail-open).
	PolicyContinue Policy = C.SG_EXC_CONTINUE
	// PolicyDenyEIO fails the syscall with EIO.
	PolicyDenyEIO Policy = C.SG_EXC_DENY_EIO
)

func (p Policy) String() string {
	switch p {
	case PolicyKill:
		return "kill"
	case PolicyDenyEPERM:
		return "deny-eperm"
	case PolicyContinue:
		return "continue"
	case PolicyDenyEIO:
		return "deny-eio"
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

func (p Policy) valid() bool { return p >= PolicyKill && p <= PolicyDenyEIO }

// MaxInjectBytes is the most data InjectBytes carries (the protocol's cap).
const MaxInjectBytes = 1 << 20

type actionKind uint8

const (
	actNone actionKind = iota // the zero Action: no answer, a failure
	actContinue
	actErrno
	actReturn
	actKill
	actInject
)

// Action is a handler's answer to one notification, made by Continue,
// Errno, Return, Kill or InjectBytes. The zero Action is no answer: a
// handler returning it fails (its registration's Policy applies). An
// Action built from an invalid value (Errno(0), Kill(0), too many bytes)
// is invalid in the same way; Err says why.
type Action struct {
	kind   actionKind
	value  int64
	data   []byte
	flags  C.uint
	cookie uint64
	err    error
}

// Continue lets the syscall run (or the next handler in sysgate's chain
// decide). Never a security decision: the program may change its memory
// after the check.
func Continue() Action { return Action{kind: actContinue} }

// Errno fails the syscall with e (1..4095).
func Errno(e syscall.Errno) Action {
	if e < 1 || e > 4095 {
		return Action{err: fmt.Errorf("sysgate: Errno(%d): not 1..4095", int(e))}
	}
	return Action{kind: actErrno, value: int64(e)}
}

// Return does not run the syscall: it returns v.
func Return(v int64) Action { return Action{kind: actReturn, value: v} }

// Kill sends sig (1..64) to the trapped process.
func Kill(sig syscall.Signal) Action {
	if sig < 1 || sig > 64 {
		return Action{err: fmt.Errorf("sysgate: Kill(%d): not a signal 1..64", int(sig))}
	}
	return Action{kind: actKill, value: int64(sig)}
}

// InjectOptions tune InjectBytes. The zero value gives a sealed,
// close-on-exec, untracked fd.
type InjectOptions struct {
	// Writable leaves the memfd writable (it is sealed against writes
	// otherwise).
	Writable bool
	// NoCloexec makes the new fd survive execve.
	NoCloexec bool
	// Track reports the fd the process got, with Cookie, to the worker's
	// OnInjected callback, before the syscall returns it.
	Track  bool
	Cookie uint64
}

// InjectBytes makes the syscall (typically an open) return a new fd of a
// memfd holding a copy of data (at most MaxInjectBytes).
func InjectBytes(data []byte, opts InjectOptions) Action {
	if len(data) > MaxInjectBytes {
		return Action{err: fmt.Errorf("sysgate: InjectBytes: %d bytes, more than %d",
			len(data), MaxInjectBytes)}
	}
	var flags C.uint
	if opts.Writable {
		flags |= C.SG_INJECT_WRITABLE
	}
	if opts.NoCloexec {
		flags |= C.SG_INJECT_NO_CLOEXEC
	}
	if opts.Track {
		flags |= C.SG_INJECT_TRACK
	}
	return Action{kind: actInject, data: append([]byte(nil), data...), flags: flags,
		cookie: opts.Cookie}
}

// Err is nil for a valid Action, else why it is not one.
func (a Action) Err() error {
	if a.err != nil {
		return a.err
	}
	if a.kind == actNone {
		return fmt.Errorf("sysgate: no action (the zero Action)")
	}
	return nil
}

func (a Action) String() string {
	switch a.kind {
	case actContinue:
		return "continue"
	case actErrno:
		return fmt.Sprintf("errno %d", a.value)
	case actReturn:
		return fmt.Sprintf("return %d", a.value)
	case actKill:
		return fmt.Sprintf("kill %d", a.value)
	case actInject:
		if a.flags&C.SG_INJECT_TRACK != 0 {
			return fmt.Sprintf("inject %d bytes (tracked, cookie %d)", len(a.data), a.cookie)
		}
		return fmt.Sprintf("inject %d bytes", len(a.data))
	}
	return "invalid: " + a.Err().Error()
}

// apply sets a on the C action out; an error if a is not valid or
// libsysgate refused it.
func (a Action) apply(out *C.sg_action) error {
	if err := a.Err(); err != nil {
		return err
	}
	switch a.kind {
	case actContinue:
		C.sg_continue(out)
	case actErrno:
		C.sg_errno(out, C.int(a.value))
	case actReturn:
		C.sg_return(out, C.int64_t(a.value))
	case actKill:
		C.sg_kill(out, C.int(a.value))
	case actInject:
		var p unsafe.Pointer
		if len(a.data) > 0 {
			p = unsafe.Pointer(&a.data[0])
		}
		var r C.int
		if a.flags&C.SG_INJECT_TRACK != 0 {
			r = C.sg_inject_tracked(out, p, C.size_t(len(a.data)), a.flags, C.uint64_t(a.cookie))
		} else {
			r = C.sg_inject_bytes(out, p, C.size_t(len(a.data)), a.flags)
		}
		return errorf(int64(r), "inject %d bytes", len(a.data))
	}
	return nil
}
