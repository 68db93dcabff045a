package sysgate

import (
	"fmt"
	"syscall"
)

// Error is what the SDK's functions return when libsysgate fails: the
// operation and the errno the C SDK gave. It wraps the errno, so
//
//	errors.Is(err, syscall.ESTALE)
//
// tells, for example, that a context was used after its handler returned.
type Error struct {
	Op    string        // what failed, e.g. "read memory" or "register openat"
	Errno syscall.Errno // the cause
}

func (e *Error) Error() string { return fmt.Sprintf("sysgate: %s: %v", e.Op, e.Errno) }

// Unwrap returns the errno, for errors.Is and errors.As.
func (e *Error) Unwrap() error { return e.Errno }

// errorf wraps a negative errno r from libsysgate; nil for r >= 0.
func errorf(r int64, format string, args ...any) error {
	if r >= 0 {
		return nil
	}
	return &Error{Op: fmt.Sprintf(format, args...), Errno: syscall.Errno(-r)}
}
