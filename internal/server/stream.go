package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/nextchat/nextchat/internal/answer"
	"github.com/nextchat/nextchat/internal/engine"
)

// sse writes a chat completion as server-sent events, OpenAI's chunks: the role, text deltas with [k] markers as
// they become final, then a chunk with the locations and the finish reason, usage when asked, and "[DONE]".
// Headers go out with the first event, so that a request refused before any text still gets its JSON error.
type sse struct {
	w       http.ResponseWriter
	c       completion
	started bool
}

func (s *sse) start() error {
	if s.started {
		return nil
	}
	s.started = true
	h := s.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // proxies must not hold tokens back
	s.w.WriteHeader(http.StatusOK)
	return s.choice(chatAnswer{Role: "assistant"}, nil)
}

func (s *sse) event(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(s.w, "data: %s\n\n", b); err != nil {
		return fmt.Errorf("stream: %w", err)
	}
	if f, ok := s.w.(http.Flusher); ok {
		f.Flush()
	}
	return nil
}

func (s *sse) chunk(choices []chatChoice, u *usage) error {
	return s.event(chatResponse{ID: s.c.id, Object: "chat.completion.chunk", Created: s.c.created, Model: s.c.model,
		Choices: choices, Usage: u})
}

func (s *sse) choice(delta chatAnswer, finish *string) error {
	return s.chunk([]chatChoice{{Delta: &delta, FinishReason: finish}}, nil)
}

func (s *sse) text(delta string) error {
	if err := s.start(); err != nil {
		return err
	}
	return s.choice(chatAnswer{Content: &delta}, nil)
}

// fail reports an error inside a stream that has begun (its status is already 200), then ends it.
func (s *sse) fail(err error) {
	_, body := bodyOf(err)
	if s.event(body) == nil {
		_, _ = io.WriteString(s.w, "data: [DONE]\n\n")
	}
}

func (s *Server) streamChat(w http.ResponseWriter, r *http.Request, job chatJob, prep engine.Prepared, c completion) error {
	out := &sse{w: w, c: c}
	first := s.firstTextTimer(c.arrived)
	push, finish := engine.MarkingStream(func(delta string) error { first(delta); return out.text(delta) })
	res, err := s.eng.Run(r.Context(), prep, job.gen, push)
	if err == nil {
		err = finish()
	}
	var locs []answer.Location
	if err == nil {
		locs, err = s.locations(job, res)
	}
	if err != nil {
		if out.started {
			out.fail(err)
		}
		return err
	}
	if err := out.start(); err != nil { // an answer without text still gets its role chunk
		return err
	}
	reason := finishReason(res.Finish)
	if err := out.choice(chatAnswer{Locations: locs, RawText: &res.Text}, &reason); err != nil {
		return err
	}
	u := s.usage(r, prep, res)
	if job.usage {
		if err := out.chunk([]chatChoice{}, &u); err != nil {
			return err
		}
	}
	_, err = io.WriteString(w, "data: [DONE]\n\n")
	return err
}
