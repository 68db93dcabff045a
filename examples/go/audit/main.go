// Command sysgate-go-audit records every file open and execve of the
// sandboxed program in sysgate's --audit log, and lets each run
// (fail-open):
//
//	sysgate run --audit audit.jsonl --worker sysgate-go-audit -- cat /etc/hostname
//
// gives lines such as
//
//	{"type":"record","worker":"sysgate-go-audit","data":{"pid":123,"syscall":"openat","path":"/etc/hostname"},...}
//
// A path the handler cannot read is recorded as null.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"

	"sysgate"
)

// Record is one audit record.
type Record struct {
	PID     int     `json:"pid"`
	Syscall string  `json:"syscall"`
	Path    *string `json:"path"`
}

func main() {
	if len(os.Args) > 1 {
		fmt.Fprintln(os.Stderr, "usage: sysgate-go-audit (takes no arguments)")
		os.Exit(2)
	}
	w := sysgate.NewWorker("go-audit")
	for _, t := range []struct {
		name string
		arg  int
	}{{"openat", 1}, {"open", 0}, {"creat", 0}, {"execve", 0}} {
		arg := t.arg
		err := w.Handle(t.name, func(c *sysgate.Ctx) sysgate.Action {
			r := Record{PID: c.PID, Syscall: c.SyscallName()}
			if p, err := c.Path(arg); err == nil {
				r.Path = &p
			}
			if err := c.Emit(r); err != nil {
				fmt.Fprintln(os.Stderr, "sysgate-go-audit: emit:", err)
			}
			return sysgate.Continue()
		}, sysgate.PolicyContinue)
		if errors.Is(err, syscall.ENOENT) {
			continue // not on this architecture
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "sysgate-go-audit:", err)
			os.Exit(1)
		}
	}
	if err := w.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "sysgate-go-audit:", err)
		os.Exit(1)
	}
}
