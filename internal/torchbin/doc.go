// Package torchbin reads the tensors of a PyTorch checkpoint written by torch.save (≥ 1.6): a zip archive
// holding data.pkl, a pickle of the state dict, and one raw little-endian entry per storage (MODEL_SPEC §7.1).
//
// Checkpoints come from the internet, and a pickle is a program: unpickling one with Python runs whatever it
// says. This package does not unpickle. It runs a small pickle machine that knows only the opcodes torch.save
// emits for a state dict, resolves only the globals torch uses to rebuild tensors (an allow-list), and never
// constructs any other object. Every size is bounded: the pickle's length, its memo and stack, integer widths,
// tensor ranks and element counts, and every storage is checked against the zip entry that holds it and the
// file's real size. Storages are not read here: Archive.Section returns a reader over a tensor's bytes, which
// the zip stores uncompressed at a known offset, so a 5 GB shard is streamed, never loaded.
//
// Every error wraps one of the sentinels below, so callers can classify a failure with errors.Is; the
// message says where (the pickle offset or the tensor name) and what was found.
package torchbin

import "errors"

var (
	// ErrNotArchive means the file is not a torch.save zip archive (for example the legacy pre-1.6 format, or
	// not a checkpoint at all).
	ErrNotArchive = errors.New("torchbin: not a torch zip checkpoint")
	// ErrMalformed means the pickle or the archive is inconsistent: truncated, a stack or memo misuse, a wrong
	// argument type, a storage that does not fit its entry, a duplicate name.
	ErrMalformed = errors.New("torchbin: malformed checkpoint")
	// ErrForbidden means the pickle asks for something a state dict never needs: an opcode outside the
	// supported set or a global outside the torch rebuild allow-list. Nothing it names is ever executed.
	ErrForbidden = errors.New("torchbin: forbidden pickle content")
	// ErrLimit means a declared size exceeds a bound: the pickle, memo, stack, an integer, a rank or a count.
	ErrLimit = errors.New("torchbin: size limit exceeded")
	// ErrUnsupported means a valid checkpoint feature this reader does not handle (a non-contiguous tensor, a
	// big-endian archive, a compressed entry).
	ErrUnsupported = errors.New("torchbin: unsupported checkpoint feature")
)
