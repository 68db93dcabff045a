package sysgate

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestPolicyValuesAreTheCSDKs(t *testing.T) {
	for _, c := range []struct {
		p    Policy
		want int
		name string
	}{{PolicyKill, 0, "kill"}, {PolicyDenyEPERM, 1, "deny-eperm"},
		{PolicyContinue, 2, "continue"}, {PolicyDenyEIO, 3, "deny-eio"}} {
		if int(c.p) != c.want || c.p.String() != c.name || !c.p.valid() {
			t.Errorf("%v: value %d, want %d %s", c.p, int(c.p), c.want, c.name)
		}
	}
	if Policy(4).valid() || Policy(-1).valid() {
		t.Error("policies outside 0..3 taken for valid")
	}
}

func TestActions(t *testing.T) {
	big := make([]byte, MaxInjectBytes+1)
	for _, c := range []struct {
		name  string
		a     Action
		valid bool
	}{
		{"continue", Continue(), true},
		{"errno", Errno(syscall.EACCES), true},
		{"errno 4095", Errno(4095), true},
		{"errno 0", Errno(0), false},
		{"errno 4096", Errno(4096), false},
		{"return", Return(-1), true},
		{"kill", Kill(syscall.SIGKILL), true},
		{"kill 64", Kill(64), true},
		{"kill 0", Kill(0), false},
		{"kill 65", Kill(65), false},
		{"inject", InjectBytes([]byte("x"), InjectOptions{}), true},
		{"inject empty", InjectBytes(nil, InjectOptions{Track: true}), true},
		{"inject cap", InjectBytes(big[:MaxInjectBytes], InjectOptions{}), true},
		{"inject over the cap", InjectBytes(big, InjectOptions{}), false},
		{"zero", Action{}, false},
	} {
		if err := c.a.Err(); (err == nil) != c.valid {
			t.Errorf("%s: Err() = %v, want valid %v", c.name, err, c.valid)
		}
		if s := c.a.String(); c.valid == strings.HasPrefix(s, "invalid") || s == "" {
			t.Errorf("%s: String() = %q", c.name, s)
		}
	}
	data := []byte("abc")
	a := InjectBytes(data, InjectOptions{Writable: true, NoCloexec: true, Track: true,
		Cookie: 9})
	data[0] = 'X'
	if string(a.data) != "abc" || a.cookie != 9 || a.String() != "inject 3 bytes (tracked, cookie 9)" {
		t.Errorf("InjectBytes did not keep its own copy and options: %q %v", a.data, a)
	}
}

func TestSyscallNames(t *testing.T) {
	for _, name := range []string{"openat", "getpid", "faccessat"} {
		nr, err := SyscallNumber(name)
		if err != nil || SyscallName(nr) != name {
			t.Errorf("%s: %d %v, back to %q", name, nr, err, SyscallName(nr))
		}
		if n2, err := SyscallNumber(strconv.Itoa(nr)); err != nil || n2 != nr {
			t.Errorf("%s by number: %d %v", name, n2, err)
		}
	}
	if _, err := SyscallNumber("no_such_syscall"); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("unknown name: %v", err)
	}
	if _, err := SyscallNumber("open\x00at"); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("NUL in a name: %v", err)
	}
	if SyscallName(-1) != "" || SyscallName(1<<20) != "" {
		t.Error("unknown numbers have names")
	}
}

func TestRegistrationErrors(t *testing.T) {
	w := NewWorker("t")
	ok := func(*Ctx) Action { return Continue() }
	for _, c := range []struct {
		name string
		err  error
		want syscall.Errno
	}{
		{"unknown syscall", w.Handle("no_such_syscall", ok, PolicyKill), syscall.ENOENT},
		{"unknown number", w.HandleNr(1<<20, ok, PolicyKill), syscall.ENOENT},
		{"nil handler", w.Handle("getpid", nil, PolicyKill), syscall.EINVAL},
		{"bad policy", w.Handle("getpid", ok, Policy(7)), syscall.EINVAL},
	} {
		var e *Error
		if !errors.Is(c.err, c.want) || !errors.As(c.err, &e) {
			t.Errorf("%s: %v, want %v", c.name, c.err, c.want)
		}
	}
	if err := w.Handle("getpid", ok, PolicyDenyEIO); err != nil {
		t.Fatal(err)
	}
	if len(w.regs) != 1 || w.regs[0].name != "getpid" || w.regs[0].policy != PolicyDenyEIO {
		t.Errorf("registration: %+v", w.regs)
	}
}

func TestRunOutsideSysgateFailsAndRunsOnce(t *testing.T) {
	t.Setenv("SYSGATE_WORKER_URL", "")
	w := NewWorker("t")
	if err := w.Handle("getpid", func(*Ctx) Action { return Return(1) }, PolicyKill); err != nil {
		t.Fatal(err)
	}
	err := w.Run(context.Background())
	var e *Error
	if err == nil || !errors.As(err, &e) || e.Errno == 0 {
		t.Fatalf("Run outside sysgate: %v", err)
	}
	if err := w.Run(context.Background()); !errors.Is(err, syscall.EBUSY) {
		t.Errorf("second Run: %v", err)
	}
	if err := w.Handle("getppid", func(*Ctx) Action { return Continue() },
		PolicyKill); !errors.Is(err, syscall.EBUSY) {
		t.Errorf("Handle after Run: %v", err)
	}
	if err := w.OnInjected(func(int, int, uint64) {}); !errors.Is(err, syscall.EBUSY) {
		t.Errorf("OnInjected after Run: %v", err)
	}
	if err := w.Emit(map[string]int{"a": 1}); !errors.Is(err, syscall.ENOTCONN) {
		t.Errorf("Emit without a run: %v", err)
	}
}

func TestRunChecks(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := NewWorker("t").Run(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Run with a done context: %v", err)
	}
	w := NewWorker("t")
	w.Threads = MaxThreads + 1
	if err := w.Run(context.Background()); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("Run with %d threads: %v", w.Threads, err)
	}
}

// A context whose handler returned: every accessor fails with ESTALE, and
// its fields stay readable.
func TestStaleContext(t *testing.T) {
	c := &Ctx{PID: 42, Syscall: 39, Args: [6]uint64{1}}
	buf := make([]byte, 4)
	_, err1 := c.Read(0x1000, buf)
	_, err2 := c.Write(0x1000, buf)
	_, err3 := c.ReadCString(0x1000, 10)
	_, _, err4 := c.PreRead(1)
	_, err5 := c.Path(1)
	_, err6 := c.Defer()
	for i, err := range []error{err1, err2, err3, err4, err5, err6} {
		if !errors.Is(err, syscall.ESTALE) {
			t.Errorf("accessor %d on a stale context: %v", i+1, err)
		}
	}
	if _, err := c.Path(6); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("Path(6): %v", err)
	}
	if _, err := c.ReadCString(0, 0); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("ReadCString max 0: %v", err)
	}
	if c.PID != 42 || c.SyscallName() != SyscallName(39) {
		t.Error("fields of a stale context changed")
	}
	if err := c.Emit(1); !errors.Is(err, syscall.ENOTCONN) {
		t.Errorf("Emit from a detached context: %v", err)
	}
}

func TestEncodeRecord(t *testing.T) {
	for _, c := range []struct {
		name string
		rec  any
		want syscall.Errno // 0: accepted
	}{
		{"object", map[string]any{"pid": 1, "path": "/etc/hostname"}, 0},
		{"int64 bounds", []int64{-1 << 63, 1<<63 - 1}, 0},
		{"float", 1.5e300, 0},
		{"backslash then u0000", `\u0000`, 0},
		{"beyond int64", uint64(1) << 63, syscall.EINVAL},
		{"nested beyond int64", map[string]any{"a": []any{uint64(1<<64 - 1)}}, syscall.EINVAL},
		{"NUL", "a\x00b", syscall.EINVAL},
		{"not JSON", make(chan int), syscall.EINVAL},
		{"too long", strings.Repeat("x", MaxRecordBytes), syscall.EMSGSIZE},
	} {
		data, err := EncodeRecord(c.rec)
		if c.want == 0 && (err != nil || len(data) == 0) {
			t.Errorf("%s: refused: %v", c.name, err)
		}
		if c.want != 0 && !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func TestErrorWrapsTheErrno(t *testing.T) {
	err := errorf(-int64(syscall.ECONNRESET), "read %d bytes", 3)
	if !errors.Is(err, syscall.ECONNRESET) || err.Error() != "sysgate: read 3 bytes: "+
		syscall.ECONNRESET.Error() {
		t.Errorf("%v", err)
	}
	if errorf(0, "fine") != nil {
		t.Error("errorf(0) is an error")
	}
}
