// Command sg_bench_worker_go is the Go worker side of the benchmark: the
// handlers of sg_bench_worker (bench-worker.c), mode for mode, written
// against the Go SDK.
//
//	sg_bench_worker_go MODE    (started by `sysgate run --worker 'sg_bench_worker_go MODE'`)
//
// MODE:
//
//	continue  getppid: continue at once (the supervisor -> worker -> supervisor hop,
//	          plus the SDK's way into Go and back)
//	nopath    faccessat: continue at once, without reading the path
//	path      faccessat: check the path the supervisor pre-read for argument 1 is "/",
//	          continue
//	read      pwrite64: read the 256-byte buffer at argument 1 with one Ctx.Read (a
//	          round trip through the memory proxy), check its bytes, continue
//
// A check that fails makes the handler fail and the registrations use
// PolicyDenyEIO: sg_bench_loop sees EIO instead of the expected result and
// stops with an error, so a broken path never passes for a fast one. The
// constants mirror bench-shared.h.
package main

import (
	"context"
	"fmt"
	"os"

	"sysgate"
)

const (
	benchPath    = "/"
	benchReadFD  = -1
	benchReadLen = 256
)

func onContinue(*sysgate.Ctx) sysgate.Action { return sysgate.Continue() }

func onPath(c *sysgate.Ctx) sysgate.Action {
	if p, ok, _ := c.PreRead(1); !ok || p != benchPath {
		return sysgate.Action{} // no answer: a failure
	}
	return sysgate.Continue()
}

func onRead(c *sysgate.Ctx) sysgate.Action {
	var buf [benchReadLen]byte
	if int32(c.Args[0]) != benchReadFD {
		return sysgate.Action{}
	}
	if n, err := c.Read(c.Args[1], buf[:]); err != nil || n != len(buf) {
		return sysgate.Action{}
	}
	for i, b := range buf {
		if b != byte(i*31+7) {
			return sysgate.Action{}
		}
	}
	return sysgate.Continue()
}

var modes = map[string]struct {
	syscall string
	fn      sysgate.HandlerFunc
}{
	"continue": {"getppid", onContinue},
	"nopath":   {"faccessat", onContinue},
	"path":     {"faccessat", onPath},
	"read":     {"pwrite64", onRead},
}

func main() {
	m, ok := modes[""]
	if len(os.Args) == 2 {
		m, ok = modes[os.Args[1]]
	}
	if !ok {
		fmt.Fprintln(os.Stderr, "usage: sg_bench_worker_go continue|nopath|path|read")
		os.Exit(2)
	}
	w := sysgate.NewWorker("sg_bench_worker_go")
	err := w.Handle(m.syscall, m.fn, sysgate.PolicyDenyEIO)
	if err == nil {
		err = w.Run(context.Background())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sg_bench_worker_go:", err)
		os.Exit(1)
	}
}
