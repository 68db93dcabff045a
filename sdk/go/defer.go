package sysgate

/*
#include <sysgate.h>
*/
import "C"

import (
	"sync"
	"syscall"
)

// Deferred is an answer a handler promised to give later (Ctx.Defer).
// Exactly one Answer or Cancel gives it; until then its Ctx stays usable.
//
// It counts against the worker's in-flight limit (sysgate allows 64 per
// worker) until answered, and sysgate's --handler-timeout runs from the
// notification's arrival: an answer not given by then gets the
// registration's Policy, and sysgate restarts the worker as hung.
type Deferred struct {
	mu  sync.Mutex
	d   *C.sg_deferred // nil once answered
	ctx *Ctx
}

// Defer promises that the notification will be answered later, through the
// returned Deferred, from any goroutine. Call it during the handler call;
// the handler's return value is then ignored (return Continue(), say), and
// the worker goes on with other notifications while the trapped thread
// waits. The Ctx stays usable until the answer is given. Errors wrap
// ESTALE (the handler returned), EALREADY (deferred already), ENOMEM.
func (c *Ctx) Defer() (*Deferred, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.c == nil {
		return nil, stale("defer")
	}
	if c.deferred != nil {
		return nil, &Error{Op: "defer", Errno: syscall.EALREADY}
	}
	d, err := C.sg_defer(c.c)
	if d == nil {
		e, _ := err.(syscall.Errno)
		if e == 0 {
			e = syscall.EINVAL
		}
		return nil, &Error{Op: "defer", Errno: e}
	}
	// From now on the context is the deferred answer's copy, live until
	// the answer is given.
	c.c = C.sg_deferred_ctx(d)
	c.deferred = &Deferred{d: d, ctx: c}
	return c.deferred, nil
}

// Ctx is the notification's context (the handler's, still live).
func (d *Deferred) Ctx() *Ctx { return d.ctx }

// Answer sends a as the answer. An invalid Action is answered as a handler
// failure (the Policy applies), reported, and returned as the error.
// Afterwards the Ctx is stale. Errors also wrap EALREADY (answered
// already) and ENOTCONN (the run ended: the supervisor settled the
// notification itself).
func (d *Deferred) Answer(a Action) error {
	return d.finish(a, false)
}

// Cancel answers with a failure: the registration's Policy applies.
func (d *Deferred) Cancel() error {
	return d.finish(Action{}, true)
}

func (d *Deferred) finish(a Action, cancel bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.d == nil {
		return &Error{Op: "answer a deferred notification", Errno: syscall.EALREADY}
	}
	d.ctx.retire() // after the memory calls in progress, as sg_complete needs
	var failed error
	if !cancel {
		failed = a.apply(C.sg_deferred_action(d.d))
	}
	var r C.int
	if cancel || failed != nil {
		r = C.sg_deferred_cancel(d.d)
	} else {
		r = C.sg_complete(d.d)
	}
	d.d = nil
	if failed != nil {
		d.ctx.reg.worker.reportFailure(d.ctx.reg, d.ctx, "deferred answer: "+failed.Error())
		return failed
	}
	return errorf(int64(r), "answer notification %d", d.ctx.ID)
}
