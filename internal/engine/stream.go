package engine

import (
	"strings"
	"unicode/utf8"

	"github.com/nextchat/nextchat/internal/tokenizer"
)

// textStream turns the growing token list into final text: it decodes the whole answer each time (byte
// pieces and leading spaces only resolve in context), emits what is new and settled, holds back a trailing
// replacement character (an incomplete UTF-8 sequence may still complete) and anything that could be the
// start of a stop string, and cuts the text at the first stop string.
type textStream struct {
	tok     *tokenizer.Tokenizer
	stop    []string
	emit    func(string) error
	text    string // decoded so far, cut at a stop string
	emitted int    // bytes of text already emitted
}

func newTextStream(tok *tokenizer.Tokenizer, stop []string, emit func(string) error) *textStream {
	return &textStream{tok: tok, stop: stop, emit: emit}
}

// push decodes the tokens so far; true when a stop string appeared.
func (s *textStream) push(tokens []int32) (bool, error) {
	text, err := s.tok.Decode(tokens, true)
	if err != nil {
		return false, err
	}
	stopped := false
	for _, st := range s.stop {
		if i := strings.Index(text, st); st != "" && i >= 0 {
			text, stopped = text[:i], true
		}
	}
	s.text = text
	if stopped {
		return true, s.flush(len(text))
	}
	return false, s.flush(s.settled(text))
}

// settled is how much of text can be emitted without being taken back.
func (s *textStream) settled(text string) int {
	n := len(text)
	if r, size := utf8.DecodeLastRuneInString(text); r == utf8.RuneError && size > 0 {
		n -= size
	}
	for _, st := range s.stop {
		for k := min(len(st)-1, n); k > 0; k-- {
			if strings.HasSuffix(text[:n], st[:k]) {
				n -= k
				break
			}
		}
	}
	return max(n, s.emitted)
}

func (s *textStream) flush(upTo int) error {
	if s.emit == nil || upTo <= s.emitted {
		return nil
	}
	delta := s.text[s.emitted:upTo]
	s.emitted = upTo
	return s.emit(delta)
}

// finish emits the rest and returns the whole text.
func (s *textStream) finish() (string, error) {
	return s.text, s.flush(len(s.text))
}
