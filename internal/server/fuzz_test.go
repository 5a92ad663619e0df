package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"
)

// Any request body the decoder accepts is turned into a job or refused with a 400 naming the problem: parsing
// messages, content parts, data URLs, locations and sampling fields never panics (the body is untrusted input).
func FuzzChatJob(f *testing.F) {
	for _, seed := range []string{
		`{"messages": [{"role": "user", "content": "hi"}]}`,
		`{"messages": [{"role": "user", "content": [{"type": "text", "text": "What is [0]?"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}], "regions": [[1, 2, 3, 4]]}`,
		`{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b [0] [1]", "locations": [{"box": [0, 0, 1, 1]}]}, {"role": "user", "content": "c"}]}`,
		`{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "Answer: <at>"}], "num_beams": 3, "stop": ["x"]}`,
		`{"messages": [{"role": "system", "content": null}], "temperature": -1, "top_p": 2, "seed": -5, "n": 3}`,
		`{"messages": [{"role": "user", "content": [{"type": "image_url"}]}], "max_tokens": 0, "iou_threshold": 7}`,
	} {
		f.Add([]byte(seed))
	}
	s := &Server{opts: Options{IoUThreshold: 0.3}}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req chatRequest
		if json.Unmarshal(body, &req) != nil {
			return
		}
		_, err := s.chatJob(&req)
		var ae *apiError
		if err != nil && (!errors.As(err, &ae) || ae.status != http.StatusBadRequest || ae.msg == "") {
			t.Fatalf("refusal %v is not a 400 with a message", err)
		}
	})
}
