package sysgate

/*
#include <sysgate.h>
*/
import "C"

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"syscall"
	"unsafe"
)

// MaxRecordBytes is the longest record Emit sends, in bytes of JSON.
const MaxRecordBytes = 64 << 10

// Emit sends record, encoded with encoding/json, to whoever runs the
// sandbox: sysgate writes it to its --audit log as
// {"type":"record","worker":NAME,"data":RECORD}. The supported way to get
// results out of a worker. Any goroutine, while Run runs. Before anything
// is sent, Emit refuses what sysgate would take for a protocol violation
// (and end the worker's run for): more than MaxRecordBytes of JSON, a
// string holding NUL, an integer beyond 64 bits (signed). Errors wrap
// ENOTCONN (no run), EMSGSIZE, EINVAL.
func (w *Worker) Emit(record any) error {
	data, err := EncodeRecord(record)
	if err != nil {
		return err
	}
	w.linkMu.RLock()
	defer w.linkMu.RUnlock()
	if w.link == nil {
		return &Error{Op: "emit: the worker is not running", Errno: syscall.ENOTCONN}
	}
	r := C.sg_worker_emit(w.link, (*C.char)(unsafe.Pointer(&data[0])), C.size_t(len(data)))
	return errorf(int64(r), "emit %d bytes", len(data))
}

// EncodeRecord is the JSON text Emit would send for record, or why it
// would refuse it.
func EncodeRecord(record any) ([]byte, error) {
	data, err := json.Marshal(record)
	if err != nil {
		return nil, &recordError{syscall.EINVAL, err.Error()}
	}
	if len(data) > MaxRecordBytes {
		return nil, &recordError{syscall.EMSGSIZE,
			fmt.Sprintf("%d bytes of JSON, more than %d", len(data), MaxRecordBytes)}
	}
	if escapedNUL(data) {
		return nil, &recordError{syscall.EINVAL, "a string holds NUL, which the audit log refuses"}
	}
	// Integers the supervisor's parser takes: 64-bit signed.
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, &recordError{syscall.EINVAL, err.Error()}
	}
	if n, ok := bigInteger(v); ok {
		return nil, &recordError{syscall.EINVAL, "integer " + n + " does not fit in 64 bits"}
	}
	return data, nil
}

type recordError struct {
	errno syscall.Errno
	why   string
}

func (e *recordError) Error() string { return "sysgate: emit: " + e.why }
func (e *recordError) Unwrap() error { return e.errno }

// escapedNUL reports whether JSON text holds \u0000 (an escape, not an
// escaped backslash followed by "u0000").
func escapedNUL(data []byte) bool {
	for i := 0; i+5 < len(data); i++ {
		if data[i] != '\\' {
			continue
		}
		if string(data[i+1:i+6]) == "u0000" {
			return true
		}
		i++ // skip the escaped character, a backslash included
	}
	return false
}

// bigInteger finds an integer in v (decoded with UseNumber) that does not
// fit in an int64.
func bigInteger(v any) (string, bool) {
	switch x := v.(type) {
	case json.Number:
		s := string(x)
		if bytes.ContainsAny([]byte(s), ".eE") {
			return "", false
		}
		if _, err := strconv.ParseInt(s, 10, 64); err != nil {
			return s, true
		}
	case []any:
		for _, e := range x {
			if n, ok := bigInteger(e); ok {
				return n, true
			}
		}
	case map[string]any:
		for _, e := range x {
			if n, ok := bigInteger(e); ok {
				return n, true
			}
		}
	}
	return "", false
}
