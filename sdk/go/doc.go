// Package sysgate writes sysgate handlers in Go.
//
// sysgate runs a program under a seccomp user-notification filter and
// hands the syscalls it traps to handler workers: separate, sandboxed
// processes, so a handler that panics, hangs or crashes costs its
// registration's exception Policy, not the sandbox or the supervisor. This
// package is a thin cgo binding over the C SDK, libsysgate: the protocol,
// the handler threads and the fast channel live in C, once.
//
// A worker registers handlers and serves until sysgate ends the run:
//
//	func main() {
//		w := sysgate.NewWorker("deny-secrets")
//		w.Handle("openat", func(c *sysgate.Ctx) sysgate.Action {
//			if p, err := c.Path(1); err == nil && strings.HasPrefix(p, "/secret/") {
//				return sysgate.Errno(syscall.EACCES)
//			}
//			return sysgate.Continue()
//		}, sysgate.PolicyDenyEPERM)
//		if err := w.Run(context.Background()); err != nil {
//			log.Fatal(err)
//		}
//	}
//
// and sysgate starts it:
//
//	sysgate run --worker ./deny-secrets -- cat /secret/key
//
// Handlers run on libsysgate's handler threads (Worker.Threads), several
// at once; each call gets a Ctx whose methods read and write the trapped
// process's memory through the supervisor. A handler that cannot decide at
// once calls Ctx.Defer and answers later from any goroutine. Worker.Emit
// sends JSON records to sysgate's --audit log. Observers (handlers that
// only watch) do not exist in sysgate yet, so there is no Observe.
//
// Errors of the SDK are *Error values (or wrap a syscall.Errno in another
// way): errors.Is(err, syscall.ESTALE) works.
package sysgate
