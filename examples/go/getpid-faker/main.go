// Command sysgate-go-getpid-faker makes getpid() return VALUE (default
// 4242) in the sandboxed program:
//
//	sysgate run --worker 'sysgate-go-getpid-faker 1234' -- sh -c 'echo $$'
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"

	"sysgate"
)

func main() {
	value := int64(4242)
	if len(os.Args) > 2 {
		fmt.Fprintln(os.Stderr, "usage: sysgate-go-getpid-faker [VALUE]")
		os.Exit(2)
	}
	if len(os.Args) == 2 {
		v, err := strconv.ParseInt(os.Args[1], 10, 64)
		if err != nil {
			fmt.Fprintln(os.Stderr, "sysgate-go-getpid-faker: VALUE:", err)
			os.Exit(2)
		}
		value = v
	}
	w := sysgate.NewWorker("getpid-faker")
	// A handler that fails kills the sandbox (the default policy).
	err := w.Handle("getpid", func(*sysgate.Ctx) sysgate.Action {
		return sysgate.Return(value)
	}, sysgate.PolicyKill)
	if err == nil {
		err = w.Run(context.Background())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sysgate-go-getpid-faker:", err)
		os.Exit(1)
	}
}
