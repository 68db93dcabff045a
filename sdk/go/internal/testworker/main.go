// Command sg-go-testworker is the Go worker of tests/integration/test_go_sdk.py:
// one handler set per mode, each checking one behaviour of the SDK end to
// end. Results the test needs beyond what the program sees go out as
// records (Emit), to sysgate's --audit log.
//
//	sg-go-testworker MODE [ARG...]
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"sysgate"
)

// waitLimit bounds every wait of a handler: a broken run fails the test in
// bounded time instead of hanging it.
const waitLimit = 20 * time.Second

func usage() {
	fmt.Fprintln(os.Stderr, "usage: sg-go-testworker deny PATH...|return N|memory|panic|hang|"+
		"concurrent N|defer N|inject [writable] [nocloexec]|tracked|uid|emit-checks")
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	w := sysgate.NewWorker("go-test")
	mode, args := os.Args[1], os.Args[2:]
	var err error
	switch mode {
	case "deny":
		err = w.Handle("openat", func(c *sysgate.Ctx) sysgate.Action {
			p, err := c.Path(1)
			if err != nil {
				return sysgate.Errno(syscall.EIO)
			}
			for _, d := range args {
				if p == d {
					return sysgate.Errno(syscall.EACCES)
				}
			}
			return sysgate.Continue()
		}, sysgate.PolicyDenyEPERM)
	case "return":
		n, _ := strconv.ParseInt(args[0], 10, 64)
		err = w.Handle("getpid", func(*sysgate.Ctx) sysgate.Action { return sysgate.Return(n) },
			sysgate.PolicyKill)
	case "memory":
		err = memory(w)
	case "panic", "hang":
		// getppid(1) panics or hangs; getppid(0) returns 7.
		err = w.Handle("getppid", func(c *sysgate.Ctx) sysgate.Action {
			if c.Args[0] == 1 {
				if mode == "hang" {
					select {}
				}
				panic("boom from the test handler")
			}
			return sysgate.Return(7)
		}, sysgate.PolicyDenyEIO)
	case "concurrent":
		err = concurrent(w, args)
	case "defer":
		err = deferred(w, args)
	case "inject":
		var opts sysgate.InjectOptions
		for _, a := range args {
			opts.Writable = opts.Writable || a == "writable"
			opts.NoCloexec = opts.NoCloexec || a == "nocloexec"
		}
		err = w.Handle("openat", func(c *sysgate.Ctx) sysgate.Action {
			if p, _ := c.Path(1); p == "/nonexistent/injected" {
				return sysgate.InjectBytes([]byte("injected bytes\n"), opts)
			}
			return sysgate.Continue()
		}, sysgate.PolicyDenyEIO)
	case "tracked":
		err = tracked(w)
	case "uid":
		err = w.Handle("getpid", func(*sysgate.Ctx) sysgate.Action {
			return sysgate.Return(int64(os.Getuid()))
		}, sysgate.PolicyKill)
	case "emit-checks":
		err = w.Handle("getpid", func(c *sysgate.Ctx) sysgate.Action {
			bad := []any{map[string]any{"big": uint64(1) << 63}, "nul\x00",
				strings.Repeat("x", sysgate.MaxRecordBytes), func() {}}
			var out []string
			for _, r := range bad {
				e := c.Emit(r)
				out = append(out, fmt.Sprintf("%v %v", e != nil,
					errors.Is(e, syscall.EINVAL) || errors.Is(e, syscall.EMSGSIZE)))
			}
			if e := c.Emit(map[string]any{"bad": out, "ok": true}); e != nil {
				panic(e)
			}
			return sysgate.Return(1)
		}, sysgate.PolicyKill)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sg-go-testworker:", err)
		os.Exit(1)
	}
	if err := w.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "sg-go-testworker:", err)
		os.Exit(1)
	}
}

// memory: openat records its path three ways (pre-read copy, memory read,
// Path); getcwd writes a fake directory into the caller's buffer; pwrite64
// on fd -1 records the bytes of its buffer.
func memory(w *sysgate.Worker) error {
	err := w.Handle("openat", func(c *sysgate.Ctx) sysgate.Action {
		mem, err := c.ReadCString(c.Args[1], sysgate.PathMax)
		if err != nil || !strings.HasPrefix(mem, "/nonexistent/") {
			return sysgate.Continue()
		}
		pre, ok, _ := c.PreRead(1)
		path, _ := c.Path(1)
		if e := c.Emit(map[string]any{"pre": pre, "pre_ok": ok, "mem": mem, "path": path,
			"syscall": c.SyscallName(), "pid": c.PID}); e != nil {
			panic(e)
		}
		return sysgate.Continue()
	}, sysgate.PolicyDenyEIO)
	if err != nil {
		return err
	}
	err = w.Handle("getcwd", func(c *sysgate.Ctx) sysgate.Action {
		fake := []byte("/fake/cwd\x00")
		if c.Args[1] < uint64(len(fake)) {
			return sysgate.Errno(syscall.ERANGE)
		}
		if _, err := c.Write(c.Args[0], fake); err != nil {
			panic(err)
		}
		return sysgate.Return(int64(len(fake)))
	}, sysgate.PolicyDenyEIO)
	if err != nil {
		return err
	}
	return w.Handle("pwrite64", func(c *sysgate.Ctx) sysgate.Action {
		if int32(c.Args[0]) != -1 {
			return sysgate.Continue()
		}
		buf := make([]byte, c.Args[2])
		n, err := c.Read(c.Args[1], buf)
		if err != nil {
			panic(err)
		}
		_, pre, _ := c.PreRead(1) // not a path argument: nothing pre-read
		if e := c.Emit(map[string]any{"data": string(buf[:n]), "pre_ok": pre}); e != nil {
			panic(e)
		}
		return sysgate.Continue()
	}, sysgate.PolicyDenyEIO)
}

// concurrent: getppid waits until N calls are in the handler at once (or
// waitLimit), then returns the most it saw in flight.
func concurrent(w *sysgate.Worker, args []string) error {
	n, _ := strconv.Atoi(args[0])
	w.Threads = n
	var mu sync.Mutex
	cond := sync.NewCond(&mu)
	inflight, most := 0, 0
	return w.Handle("getppid", func(c *sysgate.Ctx) sysgate.Action {
		mu.Lock()
		defer mu.Unlock()
		inflight++
		if inflight > most {
			most = inflight
		}
		cond.Broadcast()
		deadline := time.Now().Add(waitLimit)
		t := time.AfterFunc(waitLimit, func() { mu.Lock(); cond.Broadcast(); mu.Unlock() })
		defer t.Stop()
		for most < n && time.Now().Before(deadline) {
			cond.Wait()
		}
		inflight--
		return sysgate.Return(int64(most))
	}, sysgate.PolicyDenyEIO)
}

// deferred: getppid defers its answer; once N answers are pending (or
// waitLimit passed), another goroutine answers them all with how many were
// pending at once. With one handler thread, only deferral lets N calls be
// pending together.
func deferred(w *sysgate.Worker, args []string) error {
	n, _ := strconv.Atoi(args[0])
	w.Threads = 1
	pending := make(chan *sysgate.Deferred, n)
	go func() {
		for {
			var batch []*sysgate.Deferred
			timeout := time.After(waitLimit)
		collect:
			for len(batch) < n {
				select {
				case d := <-pending:
					batch = append(batch, d)
				case <-timeout:
					break collect
				}
			}
			for _, d := range batch {
				// The context is live until the answer: its memory too.
				if _, _, err := d.Ctx().PreRead(0); err != nil {
					fmt.Fprintln(os.Stderr, "sg-go-testworker: deferred context not live:", err)
					os.Exit(1)
				}
				if err := d.Answer(sysgate.Return(int64(len(batch)))); err != nil {
					fmt.Fprintln(os.Stderr, "sg-go-testworker: answer:", err)
				}
				if _, _, err := d.Ctx().PreRead(0); !errors.Is(err, syscall.ESTALE) {
					fmt.Fprintln(os.Stderr, "sg-go-testworker: context live after the answer")
					os.Exit(1)
				}
			}
		}
	}()
	return w.Handle("getppid", func(c *sysgate.Ctx) sysgate.Action {
		d, err := c.Defer()
		if err != nil {
			panic(err)
		}
		if _, err := c.Defer(); !errors.Is(err, syscall.EALREADY) {
			panic(fmt.Sprintf("second Defer: %v", err))
		}
		pending <- d
		return sysgate.Continue() // ignored: d answers
	}, sysgate.PolicyDenyEIO)
}

// tracked: opening /nonexistent/tracked gets injected bytes, tracked with
// cookie 5; the injection callback records the fd and pid; a read of that
// fd is counted (the callback ran before it) and recorded at close.
func tracked(w *sysgate.Worker) error {
	var mu sync.Mutex
	reads := map[[2]int]int{}
	err := w.OnInjected(func(pid, fd int, cookie uint64) {
		mu.Lock()
		reads[[2]int{pid, fd}] = 0
		mu.Unlock()
		if e := w.Emit(map[string]any{"injected": fd, "pid": pid, "cookie": cookie}); e != nil {
			panic(e)
		}
	})
	if err != nil {
		return err
	}
	err = w.Handle("openat", func(c *sysgate.Ctx) sysgate.Action {
		if p, _ := c.Path(1); p == "/nonexistent/tracked" {
			return sysgate.InjectBytes([]byte("tracked\n"),
				sysgate.InjectOptions{Track: true, Cookie: 5})
		}
		return sysgate.Continue()
	}, sysgate.PolicyDenyEIO)
	if err != nil {
		return err
	}
	count := func(c *sysgate.Ctx) sysgate.Action {
		key := [2]int{c.PID, int(int32(c.Args[0]))}
		mu.Lock()
		defer mu.Unlock()
		if n, ok := reads[key]; ok {
			if c.SyscallName() == "read" {
				reads[key] = n + 1
			} else {
				delete(reads, key)
				if e := c.Emit(map[string]any{"closed": key[1], "reads": n}); e != nil {
					panic(e)
				}
			}
		}
		return sysgate.Continue()
	}
	if err := w.Handle("read", count, sysgate.PolicyDenyEIO); err != nil {
		return err
	}
	return w.Handle("close", count, sysgate.PolicyDenyEIO)
}
