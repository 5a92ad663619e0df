// Package server serves one engine over HTTP (docs/SERVER.md): an OpenAI-compatible chat completions API whose
// answers carry NExT-Chat's locations (boxes and SAM masks), grounding of referring expressions, the model list,
// health and Prometheus metrics. Every error is a JSON body with a 4xx or 5xx status; a request that fails, panics
// or goes away costs only itself.
package server

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/nextchat/nextchat/internal/answer"
	"github.com/nextchat/nextchat/internal/engine"
)

// ui is the web page (docs/SERVER.md "Web UI"): static files that talk to the API like any client.
//
//go:embed ui
var ui embed.FS

// Options configure a server. Zero values take the defaults given.
type Options struct {
	// ModelName: the model id of /v1/models, and the one requests may name (default: the model directory's name).
	ModelName string
	// MaxBodyBytes: the largest request body, images included as data URLs (default 32 MiB).
	MaxBodyBytes int64
	// MaxWaiting: requests admitted beyond those the plan's sequences can run; more are refused with 429
	// (default 4 × the plan's sequences).
	MaxWaiting int
	// DefaultMaxTokens: an answer's most new tokens when a request says none (default 512, at most what the
	// context leaves).
	DefaultMaxTokens int
	// IoUThreshold: masks whose predicted IoU is below it are dropped unless a request says otherwise (default
	// NExT-Chat's demo's 0.3; negative: keep all).
	IoUThreshold float64
	// APIKey: when set, /v1/ requests need "Authorization: Bearer APIKey" (the page, /health and /metrics do not).
	APIKey string
}

// Server answers HTTP requests on an engine. Safe for concurrent use; the engine batches the requests' steps.
type Server struct {
	eng     *engine.Engine
	opts    Options
	metrics *metrics
	// admitted holds one token per request being answered or waiting for sequences.
	admitted chan struct{}
	created  int64 // unix seconds the server started: the model's "created"
}

// New makes a server on eng, which stays the caller's to close (after the server has stopped).
func New(eng *engine.Engine, o Options) *Server {
	if o.ModelName == "" {
		o.ModelName = filepath.Base(eng.Dir.Path)
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 32 << 20
	}
	if o.MaxWaiting <= 0 {
		o.MaxWaiting = 4 * eng.Plan.Request.MaxSequences
	}
	if o.DefaultMaxTokens <= 0 {
		o.DefaultMaxTokens = 512
	}
	switch {
	case o.IoUThreshold == 0:
		o.IoUThreshold = answer.DefaultIoUThreshold
	case o.IoUThreshold < 0:
		o.IoUThreshold = 0
	}
	kv := func() (int64, int64) {
		free, total, err := eng.KVBlocks()
		if err != nil {
			slog.Warn("metrics: KV blocks", "err", err)
		}
		return free, total
	}
	capacity := eng.Plan.Request.MaxSequences + o.MaxWaiting
	return &Server{eng: eng, opts: o, metrics: newMetrics(capacity, eng.Stats, kv),
		admitted: make(chan struct{}, capacity), created: time.Now().Unix()}
}

// Handler routes the API. Unknown paths and methods get JSON errors too.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	routes := []struct {
		method, path string
		h            func(http.ResponseWriter, *http.Request) error
	}{
		{http.MethodPost, "/v1/chat/completions", s.chatCompletions},
		{http.MethodPost, "/v1/ground", s.ground},
		{http.MethodGet, "/v1/models", s.models},
		{http.MethodGet, "/health", s.health},
		{http.MethodGet, "/metrics", s.writeMetrics},
		{http.MethodGet, "/{$}", serveUI},
		{http.MethodGet, "/ui/", serveUI},
	}
	for _, r := range routes {
		mux.Handle(r.path, s.endpoint(strings.TrimSuffix(r.path, "{$}"), r.method, r.h))
	}
	mux.Handle("/", s.endpoint("other", "", func(http.ResponseWriter, *http.Request) error {
		return errorf(http.StatusNotFound, "not_found", "no such endpoint")
	}))
	return mux
}

// endpoint wraps a handler: method and API key checks, a request id, panics and errors as JSON, a log line (with
// what the handler noted, logNote) and the metrics.
func (s *Server) endpoint(route, method string, h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rw := &statusWriter{ResponseWriter: w}
		rw.Header().Set("X-Request-Id", newID(""))
		notes := &requestNotes{}
		r = r.WithContext(context.WithValue(r.Context(), notesKey{}, notes))
		err := func() (err error) {
			defer func() {
				if p := recover(); p != nil {
					slog.Error("handler panic", "route", route, "panic", p)
					err = errorf(http.StatusInternalServerError, "internal_error", "internal error")
				}
			}()
			if method != "" && r.Method != method {
				rw.Header().Set("Allow", method)
				return errorf(http.StatusMethodNotAllowed, "method_not_allowed", "%s needs %s", route, method)
			}
			if strings.HasPrefix(route, "/v1/") && !s.authorized(r) {
				rw.Header().Set("WWW-Authenticate", "Bearer")
				return errorf(http.StatusUnauthorized, "authentication_error",
					"missing or wrong API key: send Authorization: Bearer KEY")
			}
			return h(rw, r)
		}()
		if err != nil {
			s.writeError(rw, r, err)
		}
		s.metrics.request(route, rw.code())
		level := slog.LevelDebug // the page, health checks and scrapes
		if strings.HasPrefix(route, "/v1/") {
			level = slog.LevelInfo
		}
		attrs := append([]any{"method", r.Method, "path", r.URL.Path, "status", rw.code(),
			"seconds", time.Since(start).Seconds(), "id", rw.Header().Get("X-Request-Id")}, notes.attrs...)
		slog.Log(r.Context(), level, "request", attrs...)
	})
}

// authorized says whether a request carries the API key, when the server has one (compared in constant time).
func (s *Server) authorized(r *http.Request) bool {
	if s.opts.APIKey == "" {
		return true
	}
	key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(key), []byte(s.opts.APIKey)) == 1
}

// requestNotes are what a handler adds to its request's log line (tokens, cache hits, finish reason).
type requestNotes struct{ attrs []any }

type notesKey struct{}

func logNote(r *http.Request, attrs ...any) {
	if n, ok := r.Context().Value(notesKey{}).(*requestNotes); ok {
		n.attrs = append(n.attrs, attrs...)
	}
}

// apiError is an error with the HTTP status and OpenAI error type it answers with.
type apiError struct {
	status int
	kind   string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func errorf(status int, kind, format string, args ...any) error {
	return &apiError{status: status, kind: kind, msg: fmt.Sprintf(format, args...)}
}

// errorBody is OpenAI's error shape.
type errorBody struct {
	Error struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Code    any    `json:"code"`
	} `json:"error"`
}

func bodyOf(err error) (int, errorBody) {
	var b errorBody
	ae := classify(err)
	b.Error.Message, b.Error.Type, b.Error.Code = ae.msg, ae.kind, nil
	return ae.status, b
}

// writeError answers with err's status and JSON body, unless the client went away or the answer has begun (a stream
// reports errors in itself).
func (s *Server) writeError(w *statusWriter, r *http.Request, err error) {
	if r.Context().Err() != nil { // the client left (or the server's grace period ended): nobody to answer
		slog.Info("request ended early", "path", r.URL.Path, "id", w.Header().Get("X-Request-Id"), "err", err)
		return
	}
	status, body := bodyOf(err)
	if w.wrote {
		slog.Warn("request failed after its answer began", "path", r.URL.Path, "err", err)
		return
	}
	if status >= 500 {
		slog.Error("request failed", "path", r.URL.Path, "err", err)
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		slog.Debug("write response", "err", err)
	}
}

// statusWriter remembers the status written, and whether anything was.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// code is the status answered; 499 (nginx's "client closed request") when nothing was, because the client left.
func (w *statusWriter) code() int {
	if !w.wrote {
		return 499
	}
	return w.status
}

// admit takes a place among the requests being answered or waiting, or refuses with 429 when there is none.
func (s *Server) admit() (release func(), err error) {
	select {
	case s.admitted <- struct{}{}:
		s.metrics.admitted(1)
		return func() {
			s.metrics.admitted(-1)
			<-s.admitted
		}, nil
	default:
		return nil, errorf(http.StatusTooManyRequests, "server_busy",
			"server busy: %d requests are being answered or waiting; retry later", cap(s.admitted))
	}
}

func (s *Server) models(w http.ResponseWriter, _ *http.Request) error {
	type model struct {
		ID            string `json:"id"`
		Object        string `json:"object"`
		Created       int64  `json:"created"`
		OwnedBy       string `json:"owned_by"`
		ContextLength int64  `json:"context_length"`
		// How the language model's weights are held: "stored", "compact" (lossless) or "int8" (lossy).
		LLMWeights string `json:"llm_weights"`
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": []model{{ID: s.opts.ModelName,
		Object: "model", Created: s.created, OwnedBy: "nextchat", ContextLength: s.eng.Plan.Request.MaxContext,
		LLMWeights: s.eng.LLMWeights.String()}}})
	return nil
}

// serveUI answers the page at "/" and its files under /ui/.
func serveUI(w http.ResponseWriter, r *http.Request) error {
	name := strings.TrimPrefix(r.URL.Path, "/")
	if name == "" || name == "ui/" {
		name = "ui/index.html"
	}
	if info, err := fs.Stat(ui, name); err != nil || info.IsDir() {
		return errorf(http.StatusNotFound, "not_found", "no such file")
	}
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data: blob:")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	http.ServeFileFS(w, r, ui, name)
	return nil
}

func (s *Server) health(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

func (s *Server) writeMetrics(w http.ResponseWriter, _ *http.Request) error {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	return s.metrics.write(w)
}

// checkModel refuses a request naming another model than the one served (an empty name means this one).
func (s *Server) checkModel(name string) error {
	if name != "" && name != s.opts.ModelName {
		return errorf(http.StatusNotFound, "model_not_found", "model %q is not served here; this server serves %q",
			name, s.opts.ModelName)
	}
	return nil
}

// decodeBody reads a JSON request body of at most MaxBodyBytes; unknown fields are allowed (OpenAI clients send
// many), malformed JSON and bodies too large are errors.
func (s *Server) decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	if err := dec.Decode(v); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return errorf(http.StatusRequestEntityTooLarge, "invalid_request_error",
				"request body over %d bytes (--max-body-mib)", tooLarge.Limit)
		}
		return errorf(http.StatusBadRequest, "invalid_request_error", "request body: %v", err)
	}
	if dec.More() {
		return errorf(http.StatusBadRequest, "invalid_request_error", "request body: more than one JSON value")
	}
	return nil
}

// newID is a random id with a prefix ("chatcmpl-", ...).
func newID(prefix string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}
