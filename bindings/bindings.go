// Package bindings is the cgo boundary to the nextchat core (csrc/include/nextchat.h) and the only Go
// package that includes C headers. It turns status codes into Go errors, copies everything it returns into
// Go memory, and pins the C library's rules (handles freed exactly once, no C pointer kept by Go).
package bindings

/*
#cgo CFLAGS: -I${SRCDIR}/../csrc/include
#cgo LDFLAGS: -L${SRCDIR}/../build/lib -lnextchat -Wl,-rpath,${SRCDIR}/../build/lib
#include <stdlib.h>
#include "nextchat.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
)

// Sentinel errors, one per nc_status; match with errors.Is.
var (
	ErrInvalidArgument = errors.New("invalid argument")
	ErrIO              = errors.New("i/o error")
	ErrFormat          = errors.New("malformed weights")
	ErrShape           = errors.New("shape mismatch")
	ErrDType           = errors.New("unsupported dtype")
	ErrMissing         = errors.New("missing tensor")
	ErrConfig          = errors.New("invalid config")
	ErrUnsupported     = errors.New("unsupported")
	ErrOutOfMemory     = errors.New("out of memory")
	ErrInternal        = errors.New("internal error")
	ErrOverPlan        = errors.New("beyond the memory plan")
)

var statusErrors = map[C.nc_status]error{
	C.NC_ERR_INVALID_ARGUMENT: ErrInvalidArgument,
	C.NC_ERR_IO:               ErrIO,
	C.NC_ERR_FORMAT:           ErrFormat,
	C.NC_ERR_SHAPE:            ErrShape,
	C.NC_ERR_DTYPE:            ErrDType,
	C.NC_ERR_MISSING:          ErrMissing,
	C.NC_ERR_CONFIG:           ErrConfig,
	C.NC_ERR_UNSUPPORTED:      ErrUnsupported,
	C.NC_ERR_OUT_OF_MEMORY:    ErrOutOfMemory,
	C.NC_ERR_INTERNAL:         ErrInternal,
	C.NC_ERR_OVER_PLAN:        ErrOverPlan,
}

// Error is a failed core call: its status and the core's message.
type Error struct {
	Status  string // e.g. "NC_ERR_SHAPE"
	Message string
	kind    error
}

func (e *Error) Error() string { return e.Message }

// Unwrap lets errors.Is match the status's sentinel.
func (e *Error) Unwrap() error { return e.kind }

// call runs one core call and turns its status into an error. The core's message is thread-local, and a
// goroutine may move between OS threads between two cgo calls, so the thread stays locked from the call
// until the message is read.
func call(f func() C.nc_status) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	status := f()
	if status == C.NC_OK {
		return nil
	}
	kind, ok := statusErrors[status]
	if !ok {
		kind = ErrInternal
	}
	return &Error{
		Status:  C.GoString(C.nc_status_name(C.int32_t(status))),
		Message: C.GoString(C.nc_last_error()),
		kind:    kind,
	}
}

// ABIVersion is the ABI the library was built with; HeaderABIVersion the one these bindings were compiled
// against. They differ only when the shared library was swapped under a built binary.
func ABIVersion() int       { return int(C.nc_abi_version()) }
func HeaderABIVersion() int { return int(C.NC_ABI_VERSION) }

// Version is the core library's semantic version.
func Version() string { return C.GoString(C.nc_version()) }

// CheckABI fails when the loaded library does not speak the ABI these bindings were compiled for.
func CheckABI() error {
	if ABIVersion() != HeaderABIVersion() {
		return fmt.Errorf("libnextchat ABI %d, bindings built for %d: rebuild with make", ABIVersion(), HeaderABIVersion())
	}
	return nil
}
