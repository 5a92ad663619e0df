package engine

import (
	"strconv"
	"strings"

	"github.com/nextchat/nextchat/internal/prompt"
)

// MarkLocations replaces the k-th "<at> <boxes>" group of an answer with "[k]", as NExT-Chat's demo shows
// answers (MODEL_SPEC §6.4).
func MarkLocations(text string) string {
	var b strings.Builder
	for k := 0; ; k++ {
		i := strings.Index(text, prompt.Location)
		if i < 0 {
			b.WriteString(text)
			return b.String()
		}
		b.WriteString(text[:i])
		b.WriteString("[" + strconv.Itoa(k) + "]")
		text = text[i+len(prompt.Location):]
	}
}

// MarkingStream wraps a text stream so that what it passes on has location markers: push holds back a tail
// that could still become "<at> <boxes>"; finish sends it.
func MarkingStream(emit func(string) error) (push func(string) error, finish func() error) {
	var raw string
	sent := 0
	send := func(settled int) error {
		marked := MarkLocations(raw[:settled])
		if len(marked) <= sent {
			return nil
		}
		out := marked[sent:]
		sent = len(marked)
		return emit(out)
	}
	push = func(delta string) error {
		raw += delta
		settled := len(raw)
		for k := min(len(prompt.Location)-1, len(raw)); k > 0; k-- {
			if strings.HasSuffix(raw, prompt.Location[:k]) {
				settled -= k
				break
			}
		}
		return send(settled)
	}
	finish = func() error { return send(len(raw)) }
	return push, finish
}
