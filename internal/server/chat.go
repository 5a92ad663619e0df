package server

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/nextchat/nextchat/bindings"
	"github.com/nextchat/nextchat/internal/answer"
	"github.com/nextchat/nextchat/internal/engine"
	"github.com/nextchat/nextchat/internal/imageproc"
	"github.com/nextchat/nextchat/internal/prompt"
)

// chatRequest is OpenAI's chat completion request, the fields this model can honour, plus NExT-Chat's own.
type chatRequest struct {
	Model               string        `json:"model"`
	Messages            []chatMessage `json:"messages"`
	MaxTokens           *int          `json:"max_tokens"`
	MaxCompletionTokens *int          `json:"max_completion_tokens"`
	Temperature         *float32      `json:"temperature"` // default 0: greedy, as the reference's evaluations
	TopP                *float32      `json:"top_p"`
	TopK                *int          `json:"top_k"`
	RepetitionPenalty   *float32      `json:"repetition_penalty"`
	Seed                *int64        `json:"seed"`
	Stop                stopList      `json:"stop"`
	Stream              bool          `json:"stream"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	N *int `json:"n"`
	// Regions: user boxes in the image's pixels (x1, y1, x2, y2), referred to as [i] in user messages (§3.3).
	Regions [][4]float64 `json:"regions"`
	// ApplyEXIFOrientation: turn the image upright as its EXIF Orientation says before anything, as NExT-Chat's
	// gradio demo (and a browser) does; the reference reads the pixels as stored (default). Regions and returned
	// boxes are in the pixels of the image as read.
	ApplyEXIFOrientation bool `json:"apply_exif_orientation"`
	// Masks: segment every location with SAM (default: when there is an image).
	Masks        *bool    `json:"masks"`
	IoUThreshold *float64 `json:"iou_threshold"`
	// NumBeams > 1: beam search (deterministic; not streamed).
	NumBeams      int      `json:"num_beams"`
	LengthPenalty *float64 `json:"length_penalty"`
	// OpenAI features this model has no counterpart for: refused unless left at their defaults.
	Logprobs         bool            `json:"logprobs"`
	Tools            json.RawMessage `json:"tools"`
	FrequencyPenalty float64         `json:"frequency_penalty"`
	PresencePenalty  float64         `json:"presence_penalty"`
	ResponseFormat   *struct {
		Type string `json:"type"`
	} `json:"response_format"`
}

// chatMessage is one message. An assistant message sent back with the locations this server returned for it
// keeps them: its "[k]" markers become "<at> <boxes>" groups fed with locations[k].box, as when generated.
type chatMessage struct {
	Role      string          `json:"role"`
	Content   json.RawMessage `json:"content"` // a string or an array of parts (text, image_url)
	Locations []struct {
		Box [4]float32 `json:"box"` // normalized xyxy in the expand2square frame, as returned
	} `json:"locations,omitempty"`
}

// stopList is OpenAI's stop: a string or an array of strings.
type stopList []string

func (s *stopList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = stopList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("stop: want a string or an array of strings")
	}
	*s = many
	return nil
}

// chatResponse is the answer, OpenAI's shape; locations ride in the message.
type chatResponse struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []chatChoice `json:"choices"`
	Usage   *usage       `json:"usage,omitempty"`
}

type chatChoice struct {
	Index        int         `json:"index"`
	Message      *chatAnswer `json:"message,omitempty"`
	Delta        *chatAnswer `json:"delta,omitempty"`
	FinishReason *string     `json:"finish_reason"`
	Logprobs     any         `json:"logprobs"`
}

// chatAnswer is the assistant's message (or a stream's piece of it): text with [k] markers, the locations, and
// the raw text (with <at> <boxes>) for clients that render it themselves.
type chatAnswer struct {
	Role      string            `json:"role,omitempty"`
	Content   *string           `json:"content,omitempty"`
	Locations []answer.Location `json:"locations,omitempty"`
	RawText   *string           `json:"raw_text,omitempty"`
}

type usage struct {
	PromptTokens        int `json:"prompt_tokens"`
	CompletionTokens    int `json:"completion_tokens"`
	TotalTokens         int `json:"total_tokens"`
	PromptTokensDetails struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
}

// chatJob is a validated request: what to prepare and how to decode it.
type chatJob struct {
	req       engine.Request
	image     *imageproc.RGB
	gen       engine.GenParams
	maxTokens *int // as asked; nil: the default, bounded by the context left
	beams     engine.BeamParams
	masks     bool
	threshold float64
	stream    bool
	usage     bool // a stream's last chunk carries usage
}

func (s *Server) chatCompletions(w http.ResponseWriter, r *http.Request) error {
	arrived := time.Now()
	var req chatRequest
	if err := s.decodeBody(w, r, &req); err != nil {
		return err
	}
	if err := s.checkModel(req.Model); err != nil {
		return err
	}
	job, err := s.chatJob(&req)
	if err != nil {
		return err
	}
	release, err := s.admit()
	if err != nil {
		return err
	}
	defer release()
	prep, err := s.eng.Prepare(job.req)
	if err != nil {
		return err
	}
	job.gen.MaxNewTokens = s.maxNewTokens(job, prep)
	c := completion{id: newID("chatcmpl-"), created: arrived.Unix(), model: s.opts.ModelName, arrived: arrived}
	if job.stream {
		err = s.streamChat(w, r, job, prep, c)
	} else {
		err = s.answerChat(w, r, job, prep, c)
	}
	if err == nil {
		s.metrics.observe(&s.metrics.duration, time.Since(arrived))
	}
	return err
}

// completion identifies one answer across its chunks.
type completion struct {
	id      string
	created int64
	model   string
	arrived time.Time
}

func (s *Server) answerChat(w http.ResponseWriter, r *http.Request, job chatJob, prep engine.Prepared, c completion) error {
	first := s.firstTextTimer(c.arrived)
	var res engine.Result
	var err error
	if job.beams.Beams > 1 {
		res, err = s.eng.RunBeams(r.Context(), prep, job.gen, job.beams)
		first("")
	} else {
		res, err = s.eng.Run(r.Context(), prep, job.gen, func(d string) error { first(d); return nil })
	}
	if err != nil {
		return err
	}
	locs, err := s.locations(job, res)
	if err != nil {
		return err
	}
	content, raw := engine.MarkLocations(res.Text), res.Text
	reason := finishReason(res.Finish)
	u := s.usage(r, prep, res)
	writeJSON(w, http.StatusOK, chatResponse{ID: c.id, Object: "chat.completion", Created: c.created, Model: c.model,
		Choices: []chatChoice{{Message: &chatAnswer{Role: "assistant", Content: &content, Locations: locs,
			RawText: &raw}, FinishReason: &reason}}, Usage: &u})
	return nil
}

// firstTextTimer returns a callback that records the time to the first text once.
func (s *Server) firstTextTimer(arrived time.Time) func(string) {
	done := false
	return func(string) {
		if !done {
			done = true
			s.metrics.observe(&s.metrics.ttft, time.Since(arrived))
		}
	}
}

// locations describes the answer's locations and, when asked, segments them.
func (s *Server) locations(job chatJob, res engine.Result) ([]answer.Location, error) {
	locs, err := answer.Locations(res, job.image)
	if err != nil {
		return nil, err
	}
	s.metrics.add("nextchat_locations_total", len(locs))
	if job.masks && job.image != nil && len(res.Locations) > 0 {
		if err := answer.AddMasks(s.eng, job.image, res.Locations, locs, job.threshold); err != nil {
			return nil, fmt.Errorf("masks: %w", err)
		}
		s.metrics.add("nextchat_masks_total", len(locs))
	}
	return locs, nil
}

func (s *Server) usage(r *http.Request, prep engine.Prepared, res engine.Result) usage {
	logNote(r, "prompt_tokens", len(prep.IDs), "cached_tokens", res.CachedRows, "completion_tokens", len(res.Tokens),
		"locations", len(res.Locations), "finish", res.Finish)
	s.metrics.add("nextchat_prompt_tokens_total", len(prep.IDs))
	s.metrics.add("nextchat_cached_prompt_tokens_total", res.CachedRows)
	s.metrics.add("nextchat_generated_tokens_total", len(res.Tokens))
	u := usage{PromptTokens: len(prep.IDs), CompletionTokens: len(res.Tokens), TotalTokens: len(prep.IDs) + len(res.Tokens)}
	u.PromptTokensDetails.CachedTokens = res.CachedRows
	return u
}

// finishReason is OpenAI's name for how an answer ended: "stop" at EOS or a stop string, "length" at the limit.
func finishReason(f string) string {
	if f == engine.FinishLength {
		return "length"
	}
	return "stop"
}

// maxNewTokens is the answer's limit: as asked, or the default bounded by the positions the context leaves (at
// least 1, so that a prompt filling the context is refused by the engine's plan check with its reason).
func (s *Server) maxNewTokens(job chatJob, prep engine.Prepared) int {
	if job.maxTokens != nil {
		return *job.maxTokens
	}
	left := int(s.eng.Plan.Request.MaxContext) - len(prep.IDs)
	return max(1, min(s.opts.DefaultMaxTokens, left))
}

// chatJob validates a request and turns it into the engine's terms; every refusal names the field.
func (s *Server) chatJob(req *chatRequest) (chatJob, error) {
	bad := func(format string, args ...any) (chatJob, error) {
		return chatJob{}, errorf(http.StatusBadRequest, "invalid_request_error", format, args...)
	}
	switch {
	case req.N != nil && *req.N != 1:
		return bad("n: only 1 choice per request is supported")
	case req.Logprobs:
		return bad("logprobs: not supported")
	case len(req.Tools) > 0 && string(req.Tools) != "null" && string(req.Tools) != "[]":
		return bad("tools: not supported by this model")
	case req.FrequencyPenalty != 0 || req.PresencePenalty != 0:
		return bad("frequency_penalty and presence_penalty: not supported; use repetition_penalty")
	case req.ResponseFormat != nil && req.ResponseFormat.Type != "" && req.ResponseFormat.Type != "text":
		return bad("response_format: only text is supported")
	}
	job := chatJob{stream: req.Stream, masks: req.Masks == nil || *req.Masks, threshold: s.opts.IoUThreshold}
	job.usage = req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	if req.IoUThreshold != nil {
		if t := *req.IoUThreshold; t < 0 || t > 1 || math.IsNaN(t) {
			return bad("iou_threshold: want a number in [0, 1], got %v", t)
		}
		job.threshold = *req.IoUThreshold
	}
	var err error
	decode := imageproc.Options{ApplyEXIFOrientation: req.ApplyEXIFOrientation}
	if job.req, job.image, err = conversation(req.Messages, decode); err != nil {
		return chatJob{}, err
	}
	job.req.Boxes = req.Regions
	if job.gen, err = generation(req); err != nil {
		return chatJob{}, err
	}
	job.maxTokens = req.MaxCompletionTokens
	if job.maxTokens == nil {
		job.maxTokens = req.MaxTokens
	}
	if job.maxTokens != nil && *job.maxTokens < 1 {
		return bad("max_tokens: want at least 1, got %d", *job.maxTokens)
	}
	if req.NumBeams < 0 {
		return bad("num_beams: want at least 1, got %d", req.NumBeams)
	}
	if req.NumBeams > 1 {
		job.beams = engine.BeamParams{Beams: req.NumBeams, LengthPenalty: 1}
		if req.LengthPenalty != nil {
			job.beams.LengthPenalty = *req.LengthPenalty
		}
		switch {
		case req.Stream:
			return bad("num_beams > 1 cannot be streamed: the best beam is known at the end")
		case job.gen.Sampling.Temperature > 0 || len(job.gen.Stop) > 0 || job.gen.Sampling.RepetitionPenalty != 1:
			return bad("num_beams > 1 is deterministic: temperature, stop and repetition_penalty do not apply")
		}
	}
	return job, nil
}

// generation reads the sampling fields (docs/SAMPLING.md; unset ones are greedy decoding's) and has the core check
// them now, before the request takes a place or encodes its image.
func generation(req *chatRequest) (engine.GenParams, error) {
	bad := func(format string, args ...any) (engine.GenParams, error) {
		return engine.GenParams{}, errorf(http.StatusBadRequest, "invalid_request_error", format, args...)
	}
	s := bindings.Sampling{TopP: 1, RepetitionPenalty: 1}
	if req.Temperature != nil {
		s.Temperature = *req.Temperature
	}
	if req.TopP != nil {
		s.TopP = *req.TopP
	}
	if req.TopK != nil {
		s.TopK = *req.TopK
	}
	if req.RepetitionPenalty != nil {
		s.RepetitionPenalty = *req.RepetitionPenalty
	}
	if req.Seed != nil {
		if *req.Seed < 0 {
			return bad("seed: want ≥ 0, got %d", *req.Seed)
		}
		s.Seed = uint64(*req.Seed)
	}
	if err := s.Check(); err != nil {
		return bad("sampling: %v", err)
	}
	for _, stop := range req.Stop {
		if stop == "" {
			return bad("stop: empty string")
		}
	}
	return engine.GenParams{Sampling: s, Stop: req.Stop}, nil
}

// conversation turns the messages into the engine's request (§6.1): user and assistant messages alternate from
// a user's; a last assistant message is the start of the answer, continued (generate_rec's "Answer: <at>" works
// as in the reference); at most one image, in a user message, which the template puts before the first question.
// The Vicuna template's system prompt is fixed, so system messages are refused rather than silently dropped.
func conversation(msgs []chatMessage, decode imageproc.Options) (engine.Request, *imageproc.RGB, error) {
	bad := func(format string, args ...any) (engine.Request, *imageproc.RGB, error) {
		return engine.Request{}, nil, errorf(http.StatusBadRequest, "invalid_request_error", format, args...)
	}
	if len(msgs) == 0 {
		return bad("messages: empty")
	}
	var req engine.Request
	for i, m := range msgs {
		text, img, err := messageContent(m.Content, decode)
		if err != nil {
			return bad("messages[%d].content: %v", i, err)
		}
		if img != nil {
			if m.Role != "user" {
				return bad("messages[%d]: images go in user messages", i)
			}
			if req.Image != nil {
				return bad("messages[%d]: a second image; NExT-Chat answers about one image per conversation", i)
			}
			req.Image = img
		}
		switch m.Role {
		case "user":
			if len(m.Locations) > 0 {
				return bad("messages[%d]: a user message's boxes go in the request's regions, referred to as [i]", i)
			}
			req.Turns = append(req.Turns, prompt.Turn{Role: prompt.User, Text: text})
		case "assistant":
			boxes := make([][4]float32, len(m.Locations))
			for k, l := range m.Locations {
				boxes[k] = l.Box
			}
			if i == len(msgs)-1 {
				if len(boxes) > 0 {
					return bad("messages[%d]: the answer to continue cannot carry locations; its <at> are located as generated", i)
				}
				req.AnswerPrefix = text
				continue
			}
			turn := prompt.Turn{Role: prompt.Assistant, Text: text}
			if len(boxes) > 0 {
				if turn.Text, turn.Boxes, err = engine.UnmarkLocations(text, boxes); err != nil {
					return bad("messages[%d]: %v", i, err)
				}
			}
			req.Turns = append(req.Turns, turn)
		case "system", "developer":
			return bad("messages[%d]: %s messages are not supported: NExT-Chat's Vicuna template has a fixed system prompt (MODEL_SPEC §6.1)", i, m.Role)
		default:
			return bad("messages[%d]: unknown role %q (user or assistant)", i, m.Role)
		}
	}
	return req, req.Image, nil
}

// messageContent reads a message's content: a string, or parts — text (joined with newlines) and at most one
// image as a base64 data URL (the server fetches nothing).
func messageContent(raw json.RawMessage, decode imageproc.Options) (string, *imageproc.RGB, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil, nil
	}
	var text string
	if err := json.Unmarshal(raw, &text); err == nil {
		return text, nil, nil
	}
	var parts []struct {
		Type     string `json:"type"`
		Text     string `json:"text"`
		ImageURL *struct {
			URL string `json:"url"`
		} `json:"image_url"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", nil, fmt.Errorf("want a string or an array of parts")
	}
	var texts []string
	var img *imageproc.RGB
	for j, p := range parts {
		switch p.Type {
		case "text":
			texts = append(texts, p.Text)
		case "image_url":
			if p.ImageURL == nil {
				return "", nil, fmt.Errorf("part %d: image_url missing", j)
			}
			if img != nil {
				return "", nil, fmt.Errorf("part %d: a second image; NExT-Chat answers about one image per conversation", j)
			}
			var err error
			if img, err = decodeDataURL(p.ImageURL.URL, decode); err != nil {
				return "", nil, fmt.Errorf("part %d: %w", j, err)
			}
		default:
			return "", nil, fmt.Errorf("part %d: type %q (text or image_url)", j, p.Type)
		}
	}
	return strings.Join(texts, "\n"), img, nil
}

// decodeDataURL decodes an image sent inline ("data:image/png;base64,..."), read as the reference reads files
// (PIL's convert("RGB"); EXIF orientation only when opts say), within imageproc's default size limits.
func decodeDataURL(u string, opts imageproc.Options) (*imageproc.RGB, error) {
	rest, ok := strings.CutPrefix(u, "data:")
	if !ok {
		return nil, fmt.Errorf("only data URLs (data:image/png;base64,...) are accepted: the server fetches nothing")
	}
	meta, data, ok := strings.Cut(rest, ",")
	if !ok || !strings.HasSuffix(meta, ";base64") {
		return nil, fmt.Errorf("want a base64 data URL (data:image/png;base64,...)")
	}
	b, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		if b, err = base64.RawStdEncoding.DecodeString(data); err != nil {
			return nil, fmt.Errorf("data URL: %v", err)
		}
	}
	img, _, err := imageproc.DecodeBytes(b, opts)
	return img, err
}
