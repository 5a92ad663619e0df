package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nextchat/nextchat/bindings"
)

// syncBuffer is a buffer the server's goroutines write to while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServe runs `nextchat serve` on a tiny model (with the real tokenizer) on a free port until cancel, and returns
// its address, its stderr and its exit status to come.
func startServe(t *testing.T, flags ...string) (url string, stderr *syncBuffer, code chan int, cancel func()) {
	dir := realTokenizerModel(t)
	ctx, cancel := context.WithCancel(context.Background())
	stderr, code = &syncBuffer{}, make(chan int, 1)
	args := append([]string{"serve", "--model", dir, "--addr", "127.0.0.1:0", "--threads", "2"}, flags...)
	go func() {
		code <- run(ctx, args, &env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: stderr})
	}()
	addr := regexp.MustCompile(`http://127\.0\.0\.1:\d+`)
	require.Eventually(t, func() bool { return addr.MatchString(stderr.String()) }, time.Minute, 10*time.Millisecond,
		"the server prints its address")
	return addr.FindString(stderr.String()), stderr, code, cancel
}

// `serve` listens where told (port 0: a free one, printed), answers, and stops cleanly when its context ends.
func TestServeAnswersAndShutsDown(t *testing.T) {
	url, stderr, code, cancel := startServe(t, "--ctx", "256", "--log-format", "json")
	defer cancel()
	resp, err := http.Post(url+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 3}`))
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	assert.Contains(t, string(body), `"completion_tokens":3`)
	cancel()
	select {
	case c := <-code:
		assert.Equal(t, 0, c, stderr.String())
	case <-time.After(time.Minute):
		t.Fatal("serve did not stop")
	}
	assert.Contains(t, stderr.String(), `"msg":"request"`, "requests are logged as JSON")
	assert.Contains(t, stderr.String(), `"msg":"shutting down"`)
}

// A server with re-coded weights says so when it starts and in /v1/models; int8 is named lossy.
func TestServeSaysHowTheWeightsAreHeld(t *testing.T) {
	for _, tc := range []struct {
		flags       []string
		line, model string
	}{
		{nil, "", "stored"},
		{[]string{"--llm-weights", "compact"}, ", LLM weights compact,", "compact"},
		{[]string{"--llm-weights", "int8"}, ", LLM weights int8 (lossy),", "int8"},
	} {
		t.Run(tc.model, func(t *testing.T) {
			url, stderr, code, cancel := startServe(t, append([]string{"--ctx", "256"}, tc.flags...)...)
			defer func() {
				cancel()
				<-code
			}()
			if tc.line == "" {
				assert.NotContains(t, stderr.String(), "LLM weights")
			} else {
				assert.Contains(t, stderr.String(), tc.line)
			}
			resp, err := http.Get(url + "/v1/models")
			require.NoError(t, err)
			defer resp.Body.Close()
			var models struct {
				Data []struct {
					LLMWeights string `json:"llm_weights"`
				} `json:"data"`
			}
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&models))
			require.Len(t, models.Data, 1)
			assert.Equal(t, tc.model, models.Data[0].LLMWeights)
		})
	}
}

// On SIGINT/SIGTERM (the context ending) an answer already streaming is finished within the grace period.
func TestServeFinishesRunningAnswersOnShutdown(t *testing.T) {
	url, stderr, code, cancel := startServe(t, "--ctx", "512")
	defer cancel()
	resp, err := http.Post(url+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"messages": [{"role": "user", "content": "Tell a story."}], "max_tokens": 300, "stream": true,
			"stream_options": {"include_usage": true}}`))
	require.NoError(t, err)
	defer resp.Body.Close()
	events := bufio.NewReader(resp.Body)
	first, err := events.ReadString('\n')
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(first, "data: "), first)
	cancel() // the server stops accepting; the answer goes on
	rest, err := io.ReadAll(events)
	require.NoError(t, err)
	assert.Contains(t, string(rest), `"completion_tokens":300`)
	assert.True(t, strings.HasSuffix(string(rest), "data: [DONE]\n\n"), "the stream ends normally")
	select {
	case c := <-code:
		assert.Equal(t, 0, c, stderr.String())
	case <-time.After(time.Minute):
		t.Fatal("serve did not stop")
	}
}

func TestServeUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no model", []string{"serve"}, "needs --model"},
		{"stray argument", []string{"serve", "--model", "x", "extra"}, "no arguments"},
		{"bad log format", []string{"serve", "--model", "x", "--log-format", "xml"}, "--log-format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(tc.args...)
			assert.Equal(t, 2, code)
			assert.Contains(t, stderr, tc.want)
		})
	}
}

// A memory plan larger than the machine is refused at start, naming the flags that shrink it, unless overcommit is
// allowed.
func TestServeRefusesAPlanBeyondMemory(t *testing.T) {
	if _, ok := physicalMemory(); !ok {
		t.Skip("no /proc/meminfo: the memory check does not apply here")
	}
	huge := bindings.Plan{HostBytes: 1 << 60, WeightsTotal: 1 << 40, KVBytes: 1 << 59}
	err := fitsMemory(huge, false, bindings.LLMWeightsAsStored)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "lower --ctx")
	assert.Contains(t, err.Error(), "--llm-weights compact")
	assert.Contains(t, err.Error(), "--llm-weights int8")
	assert.Contains(t, err.Error(), "KV cache 536870912.0")
	for _, held := range []bindings.LLMWeights{bindings.LLMWeightsCompact, bindings.LLMWeightsInt8} {
		err = fitsMemory(huge, false, held)
		require.Error(t, err)
		assert.NotContains(t, err.Error(), "--llm-weights", "already held smaller")
	}
	assert.NoError(t, fitsMemory(huge, true, bindings.LLMWeightsAsStored))
	assert.NoError(t, fitsMemory(bindings.Plan{HostBytes: 1 << 20}, false, bindings.LLMWeightsAsStored))
}
