package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/nextchat/nextchat/internal/engine"
	"github.com/nextchat/nextchat/internal/imageproc"
	"github.com/nextchat/nextchat/internal/prompt"
	"github.com/nextchat/nextchat/internal/server"
)

// benchServe measures what the HTTP server costs over the engine it serves. For each --batches size, that many
// clients stream the same question about one image at once over loopback (greedy, --steps tokens, no masks), and
// the same answers are then run through the engine directly (benchConcurrentAnswers): the tokens per second of
// both, and the clients' mean time to their first text delta. After the warm-up the image's CLIP features and the
// prompt's KV rows are cached, so what is timed is the answers' batched decode plus, over HTTP, each request's
// JSON, image decoding, tokenization and event stream. The model directory needs its real tokenizer.
func benchServe(ctx context.Context, o benchOptions) (benchReport, error) {
	e, err := openBenchEngine(o, 1)
	if err != nil {
		return benchReport{}, err
	}
	defer e.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return benchReport{}, err
	}
	hs := &http.Server{Handler: server.New(e, server.Options{}).Handler()}
	go hs.Serve(ln)
	defer hs.Close()
	url := "http://" + ln.Addr().String() + "/v1/chat/completions"

	img, pngBytes, err := benchImage()
	if err != nil {
		return benchReport{}, err
	}
	body, err := json.Marshal(map[string]any{"messages": []map[string]any{{"role": "user", "content": []map[string]any{
		{"type": "text", "text": chatFirstQuestion},
		{"type": "image_url", "image_url": map[string]string{"url": "data:image/png;base64," + base64.StdEncoding.EncodeToString(pngBytes)}}}}},
		"max_tokens": o.steps, "masks": false, "stream": true, "stream_options": map[string]bool{"include_usage": true}})
	if err != nil {
		return benchReport{}, err
	}
	p, err := e.Prepare(engine.Request{Turns: []prompt.Turn{{Role: prompt.User, Text: chatFirstQuestion}}, Image: img})
	if err != nil {
		return benchReport{}, err
	}
	cfg := e.Config()
	params, err := llmParams(cfg)
	if err != nil {
		return benchReport{}, err
	}
	var r benchReport
	for i, b := range o.batches {
		web, err := benchHTTPAnswers(ctx, o, url, body, b)
		if err != nil {
			return r, err
		}
		direct, err := benchConcurrentAnswers(ctx, o, e, p, b)
		if err != nil {
			return r, err
		}
		direct.Benchmark = fmt.Sprintf("serve: the same %d answers through the engine directly (tokens/s)", b)
		for _, s := range []*benchReport{&web, &direct} {
			s.Model, s.Synthetic, s.KVDType, s.FLOPPerItem = o.model, e.Dir.Headers[0].Metadata["nextchat.synthetic"] != "", o.kvDType, 2*params
			s.Shape = map[string]int{"answers": b, "tokens_per_answer": o.steps, "prompt_rows": len(p.IDs),
				"hidden": cfg.HiddenSize, "layers": cfg.NumHiddenLayers}
			if *s, err = finish(*s, o); err != nil {
				return r, err
			}
		}
		if i == 0 {
			r = web
			r.Stages = []benchReport{direct}
		} else {
			r.Stages = append(r.Stages, web, direct)
		}
	}
	return r, nil
}

// benchHTTPAnswers times `answers` streamed chat completions at once; the report's FirstTokenSeconds is the mean
// over the timed runs of each client's time to its first text delta.
func benchHTTPAnswers(ctx context.Context, o benchOptions, url string, body []byte, answers int) (benchReport, error) {
	var firsts []time.Duration
	runs := 0
	seconds, err := timeRuns(ctx, o.repeat, func() error {
		type result struct {
			first time.Duration
			err   error
		}
		results := make(chan result, answers)
		for range answers {
			go func() {
				first, err := streamAnswer(ctx, url, body, o.steps)
				results <- result{first, err}
			}()
		}
		var firstErr error
		for range answers {
			res := <-results
			if res.err != nil && firstErr == nil {
				firstErr = res.err
			}
			if runs > 0 { // the first run is the warm-up
				firsts = append(firsts, res.first)
			}
		}
		runs++
		return firstErr
	})
	r := benchReport{Benchmark: fmt.Sprintf("serve: %d concurrent answers streamed over HTTP (tokens/s)", answers),
		Unit: "token", ItemsPerRun: answers * o.steps, RunSeconds: seconds}
	var sum time.Duration
	for _, f := range firsts {
		sum += f
	}
	if len(firsts) > 0 {
		r.FirstTokenSeconds = sum.Seconds() / float64(len(firsts))
	}
	return r, err
}

// streamAnswer posts one streamed chat completion and reads its events to the end: it returns the time to the
// first text delta, and an error unless the answer was `tokens` tokens long (so every run times the same work).
func streamAnswer(ctx context.Context, url string, body []byte, tokens int) (time.Duration, error) {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct{ Message string } `json:"error"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return 0, fmt.Errorf("server answered %s: %s", resp.Status, e.Error.Message)
	}
	var first time.Duration
	generated := -1
	events := bufio.NewScanner(resp.Body)
	events.Buffer(make([]byte, 64<<10), 4<<20)
	for events.Scan() {
		data, ok := strings.CutPrefix(events.Text(), "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		var chunk struct {
			Choices []struct {
				Delta struct {
					Content *string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
			Usage *struct {
				CompletionTokens int `json:"completion_tokens"`
			} `json:"usage"`
			Error *struct{ Message string } `json:"error"`
		}
		if err := json.Unmarshal([]byte(data), &chunk); err != nil {
			return 0, fmt.Errorf("event %q: %w", data, err)
		}
		switch {
		case chunk.Error != nil:
			return 0, fmt.Errorf("stream: %s", chunk.Error.Message)
		case chunk.Usage != nil:
			generated = chunk.Usage.CompletionTokens
		case first == 0 && len(chunk.Choices) > 0 && chunk.Choices[0].Delta.Content != nil:
			first = time.Since(start)
		}
	}
	if err := events.Err(); err != nil {
		return 0, err
	}
	if generated != tokens {
		return 0, fmt.Errorf("the answer had %d tokens, not --steps %d (it ended early)", generated, tokens)
	}
	return first, nil
}

// benchImage is a deterministic 320×240 test card (gradients and a box), as a decoded image and as PNG bytes.
func benchImage() (*imageproc.RGB, []byte, error) {
	m := image.NewRGBA(image.Rect(0, 0, 320, 240))
	for y := range 240 {
		for x := range 320 {
			c := color.RGBA{uint8(x * 255 / 319), uint8(y * 255 / 239), uint8((x + y) % 256), 255}
			if x > 100 && x < 200 && y > 60 && y < 160 {
				c = color.RGBA{220, 30, 30, 255}
			}
			m.Set(x, y, c)
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, m); err != nil {
		return nil, nil, err
	}
	img, _, err := imageproc.DecodeBytes(b.Bytes(), imageproc.Options{})
	return img, b.Bytes(), err
}
