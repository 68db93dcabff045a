// Command sysgate-go-path-deny fails with EPERM the path syscalls whose
// path, as the sandboxed program passed it, matches a PATTERN (path.Match:
// '*' does not match '/'):
//
//	sysgate run --worker 'sysgate-go-path-deny /etc/host*' -- cat /etc/hostname
//
// An example of a handler, not a security boundary: relative paths,
// symlinks, /proc/self/fd and ".." name the same file another way; use
// Landlock (sysgate's -r/-w) or --deny-syscall for that.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"syscall"

	"sysgate"
)

// The syscalls it watches, with the argument holding the path.
var targets = []struct {
	name string
	arg  int
}{
	{"openat", 1}, {"open", 0}, {"creat", 0}, {"execve", 0}, {"unlinkat", 1},
	{"mkdirat", 1}, {"newfstatat", 1}, {"statx", 1}, {"faccessat", 1}, {"faccessat2", 1},
}

func main() {
	patterns := os.Args[1:]
	if len(patterns) == 0 {
		fmt.Fprintln(os.Stderr, "usage: sysgate-go-path-deny PATTERN...")
		os.Exit(2)
	}
	for _, p := range patterns {
		if _, err := path.Match(p, ""); err != nil {
			fmt.Fprintf(os.Stderr, "sysgate-go-path-deny: pattern %q: %v\n", p, err)
			os.Exit(2)
		}
	}
	w := sysgate.NewWorker("path-deny")
	for _, t := range targets {
		arg := t.arg
		err := w.Handle(t.name, func(c *sysgate.Ctx) sysgate.Action {
			p, err := c.Path(arg)
			if err != nil {
				return sysgate.Continue() // no path to match (NULL, unreadable)
			}
			for _, pat := range patterns {
				if ok, _ := path.Match(pat, p); ok {
					return sysgate.Errno(syscall.EPERM)
				}
			}
			return sysgate.Continue()
		}, sysgate.PolicyDenyEPERM)
		if errors.Is(err, syscall.ENOENT) {
			continue // not on this architecture (open, creat on arm64)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "sysgate-go-path-deny:", err)
			os.Exit(1)
		}
	}
	if err := w.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "sysgate-go-path-deny:", err)
		os.Exit(1)
	}
}
