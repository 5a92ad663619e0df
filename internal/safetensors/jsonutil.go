package safetensors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// tokenReader walks a JSON document token by token with a single decoder.
//
// The header is walked this way rather than unmarshalled because
// encoding/json's convenience decoding is too forgiving for hostile input:
// maps and structs silently keep the last of duplicate keys, struct fields
// match case-insensitively, null decodes into strings and slices as a zero
// value, and json.Number accepts quoted numbers. Streaming also keeps the
// cost proportional to the input: nothing is copied into intermediate
// json.RawMessage values, and an over-long array is abandoned at the first
// element past its limit. Because only the shapes we expect are ever entered,
// nesting depth is bounded too.
type tokenReader struct {
	dec *json.Decoder
}

func newTokenReader(raw []byte) *tokenReader {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // numbers arrive as text so we control integer parsing
	return &tokenReader{dec: dec}
}

// next returns the next token, labelling decoder errors as malformed JSON.
func (r *tokenReader) next() (json.Token, error) {
	tok, err := r.dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("malformed JSON: %w", err)
	}
	return tok, nil
}

// expectDelim consumes the next token, which must be d.
func (r *tokenReader) expectDelim(d json.Delim, what string) error {
	tok, err := r.next()
	if err != nil {
		return err
	}
	if got, ok := tok.(json.Delim); !ok || got != d {
		return fmt.Errorf("expected %s, got %s", what, describeToken(tok))
	}
	return nil
}

// expectEOF checks that nothing but whitespace follows the document.
func (r *tokenReader) expectEOF() error {
	tok, err := r.dec.Token()
	switch {
	case errors.Is(err, io.EOF):
		return nil
	case err != nil:
		return fmt.Errorf("malformed JSON after object: %w", err)
	}
	return fmt.Errorf("unexpected data after object: %s", describeToken(tok))
}

// eachMember consumes a JSON object, calling fn with each key; fn must
// consume exactly that member's value. Duplicate keys are rejected; keyKind
// names what the keys are in that error message.
func (r *tokenReader) eachMember(keyKind string, fn func(key string) error) error {
	if err := r.expectDelim('{', "an object"); err != nil {
		return err
	}
	return r.members(keyKind, fn)
}

// members is eachMember for an object whose '{' was already consumed.
func (r *tokenReader) members(keyKind string, fn func(key string) error) error {
	seen := make(map[string]struct{})
	for r.dec.More() {
		tok, err := r.next()
		if err != nil {
			return err
		}
		// In object-key position the decoder only yields strings.
		key, ok := tok.(string)
		if !ok {
			return fmt.Errorf("malformed JSON: expected an object key, got %s", describeToken(tok))
		}
		if _, dup := seen[key]; dup {
			return fmt.Errorf("duplicate %s %s", keyKind, quoteBounded(key))
		}
		seen[key] = struct{}{}
		if err := fn(key); err != nil {
			return err
		}
	}
	return r.expectDelim('}', "end of object")
}

// readString consumes a JSON string.
func (r *tokenReader) readString() (string, error) {
	tok, err := r.next()
	if err != nil {
		return "", err
	}
	s, ok := tok.(string)
	if !ok {
		return "", fmt.Errorf("expected a string, got %s", describeToken(tok))
	}
	return s, nil
}

// errTooManyElements reports an array longer than readIntArray allows.
var errTooManyElements = errors.New("too many elements")

// readIntArray consumes a JSON array of at most maxLen integers.
func (r *tokenReader) readIntArray(maxLen int) ([]int64, error) {
	if err := r.expectDelim('[', "an array"); err != nil {
		return nil, err
	}
	out := []int64{}
	for r.dec.More() {
		if len(out) == maxLen {
			return nil, fmt.Errorf("%w (more than %d)", errTooManyElements, maxLen)
		}
		tok, err := r.next()
		if err != nil {
			return nil, err
		}
		num, ok := tok.(json.Number)
		if !ok {
			return nil, fmt.Errorf("element %d: expected an integer, got %s", len(out), describeToken(tok))
		}
		v, err := parseInt(num)
		if err != nil {
			return nil, fmt.Errorf("element %d: %w", len(out), err)
		}
		out = append(out, v)
	}
	if err := r.expectDelim(']', "end of array"); err != nil {
		return nil, err
	}
	return out, nil
}

// describeToken names a token for an error message.
func describeToken(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		switch v {
		case '[':
			return "an array"
		case '{':
			return "an object"
		}
		return "'" + v.String() + "'"
	case string:
		return "the string " + quoteBounded(v)
	case json.Number:
		return "the number " + quoteBounded(string(v))
	case bool:
		return strconv.FormatBool(v)
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", tok)
}

// parseInt parses a JSON number that must be an integer representable as an
// int64. Fractions and exponents are refused even when integral (1e3, 2.0):
// no conforming writer emits them, and refusing them keeps float rounding
// (1e30 -> float64 -> int64) out of size arithmetic entirely.
func parseInt(num json.Number) (int64, error) {
	s := string(num)
	if strings.ContainsAny(s, ".eE") {
		return 0, fmt.Errorf("expected an integer, got %s", quoteBounded(s))
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, fmt.Errorf("integer %s out of range", quoteBounded(s))
		}
		return 0, fmt.Errorf("expected an integer, got %s", quoteBounded(s))
	}
	return v, nil
}

// quoteBounded quotes s for an error message, truncated so that a hostile
// multi-megabyte name or value cannot blow up the error string.
func quoteBounded(s string) string {
	const limit = 64
	if len(s) > limit {
		return strconv.Quote(s[:limit]) + "..."
	}
	return strconv.Quote(s)
}

// formatShape renders a shape for an error message, eliding the tail of an
// implausibly long one.
func formatShape(shape []int64) string {
	const limit = 8
	if len(shape) <= limit {
		return fmt.Sprint(shape)
	}
	return fmt.Sprintf("%v...(%d dims)", shape[:limit], len(shape))
}
