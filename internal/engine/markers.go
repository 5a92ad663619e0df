package engine

import (
	"fmt"
	"regexp"
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

// marker is one location marker as MarkLocations writes it.
var marker = regexp.MustCompile(`\[(\d+)\]`)

// UnmarkLocations undoes MarkLocations for an earlier answer sent back with the boxes of its locations (boxes[k]
// belongs to marker "[k]"): every marker becomes "<at> <boxes>" again, and the boxes are returned in the order of
// the markers in the text, as prompt.Turn.Boxes wants them. A marker without a box is an error: its group would
// have no box to feed (§2.3).
func UnmarkLocations(marked string, boxes [][4]float32) (string, [][4]float32, error) {
	var ordered [][4]float32
	var err error
	text := marker.ReplaceAllStringFunc(marked, func(m string) string {
		k, convErr := strconv.Atoi(m[1 : len(m)-1])
		if convErr != nil || k >= len(boxes) {
			if err == nil {
				err = fmt.Errorf("%w: location marker %s but %d location(s) given", prompt.ErrBadPrompt, m, len(boxes))
			}
			return m
		}
		ordered = append(ordered, boxes[k])
		return prompt.Location
	})
	if err != nil {
		return "", nil, err
	}
	return text, ordered, nil
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
