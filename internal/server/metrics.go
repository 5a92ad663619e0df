package server

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nextchat/nextchat/internal/engine"
)

// metrics are the server's counters in the Prometheus text format (version 0.0.4), written by hand: a few
// counters, gauges and histograms do not justify a client library.
type metrics struct {
	mu        sync.Mutex
	requests  map[[2]string]uint64 // route, status code
	counters  map[string]uint64    // by metric name
	inFlight  int                  // requests holding an admission place
	capacity  int
	ttft      histogram // time to first token of streamed and unstreamed answers
	duration  histogram // chat completions, arrival to last byte
	engine    func() engine.Stats
	kvBlocks  func() (free, total int64)
	startTime time.Time
}

// The counters a request adds to, with their help text.
var counterHelp = map[string]string{
	"nextchat_prompt_tokens_total":        "Prompt rows of answered requests.",
	"nextchat_cached_prompt_tokens_total": "Prompt rows the prefix cache already held (not computed again).",
	"nextchat_generated_tokens_total":     "Tokens generated.",
	"nextchat_locations_total":            "Locations (<at> boxes) produced.",
	"nextchat_masks_total":                "Masks produced by SAM (before the IoU threshold).",
}

func newMetrics(capacity int, eng func() engine.Stats, kv func() (int64, int64)) *metrics {
	latency := []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}
	return &metrics{requests: map[[2]string]uint64{}, counters: map[string]uint64{}, capacity: capacity, engine: eng, kvBlocks: kv,
		ttft: newHistogram(latency), duration: newHistogram(latency), startTime: time.Now()}
}

func (m *metrics) request(route string, code int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests[[2]string{route, fmt.Sprint(code)}]++
}

func (m *metrics) add(name string, n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.counters[name] += uint64(n)
}

// admitted counts a request in (+1) or out (−1) of its admission place.
func (m *metrics) admitted(n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.inFlight += n
}

func (m *metrics) observe(h *histogram, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h.observe(d.Seconds())
}

// write renders every metric, names sorted within each family, as Prometheus scrapes them.
func (m *metrics) write(w io.Writer) error {
	stats := m.engine()
	free, total := m.kvBlocks()
	m.mu.Lock()
	defer m.mu.Unlock()
	var b strings.Builder
	family(&b, "nextchat_requests_total", "counter", "HTTP requests by route and status code.")
	keys := make([][2]string, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]+" "+keys[i][1] < keys[j][0]+" "+keys[j][1] })
	for _, k := range keys {
		fmt.Fprintf(&b, "nextchat_requests_total{route=%q,code=%q} %d\n", k[0], k[1], m.requests[k])
	}
	names := make([]string, 0, len(counterHelp))
	for name := range counterHelp {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		family(&b, name, "counter", counterHelp[name])
		fmt.Fprintf(&b, "%s %d\n", name, m.counters[name])
	}
	gauge(&b, "nextchat_requests_in_flight", "Requests admitted: preparing, waiting for sequences or being answered.", float64(m.inFlight))
	gauge(&b, "nextchat_requests_capacity", "Requests admitted at most (--max-sequences + --max-waiting); more get 429.", float64(m.capacity))
	gauge(&b, "nextchat_requests_waiting", "Requests waiting for the plan's sequences.", float64(stats.RequestsWaiting))
	gauge(&b, "nextchat_sequences_taken", "The plan's sequences running requests hold.", float64(stats.SequencesTaken))
	gauge(&b, "nextchat_kv_blocks_free", "Free KV cache blocks (the prefix cache's are in use until evicted).", float64(free))
	gauge(&b, "nextchat_kv_blocks", "KV cache blocks of the memory plan.", float64(total))
	family(&b, "nextchat_batched_steps_total", "counter", "Model steps that served more than one request.")
	fmt.Fprintf(&b, "nextchat_batched_steps_total %d\n", stats.BatchedSteps)
	family(&b, "nextchat_batched_sequences_total", "counter", "Requests served by those steps, summed.")
	fmt.Fprintf(&b, "nextchat_batched_sequences_total %d\n", stats.BatchedSequences)
	gauge(&b, "nextchat_uptime_seconds", "Seconds since the server started.", time.Since(m.startTime).Seconds())
	m.ttft.write(&b, "nextchat_time_to_first_token_seconds", "Arrival of a chat completion to its first text.")
	m.duration.write(&b, "nextchat_request_duration_seconds", "Arrival of a chat completion to its last byte.")
	_, err := io.WriteString(w, b.String())
	return err
}

func family(b *strings.Builder, name, kind, help string) {
	fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, kind)
}

func gauge(b *strings.Builder, name, help string, v float64) {
	family(b, name, "gauge", help)
	fmt.Fprintf(b, "%s %s\n", name, formatFloat(v))
}

func formatFloat(v float64) string {
	if math.IsInf(v, 1) {
		return "+Inf"
	}
	return fmt.Sprintf("%g", v)
}

// histogram is a Prometheus histogram: cumulative counts per upper bound, the sum and the count.
type histogram struct {
	bounds []float64
	counts []uint64 // per bound, not cumulative; the last is +Inf
	sum    float64
	n      uint64
}

func newHistogram(bounds []float64) histogram {
	return histogram{bounds: bounds, counts: make([]uint64, len(bounds)+1)}
}

func (h *histogram) observe(v float64) {
	i := sort.SearchFloat64s(h.bounds, v) // first bound ≥ v: buckets are "le"
	h.counts[i]++
	h.sum += v
	h.n++
}

func (h *histogram) write(b *strings.Builder, name, help string) {
	family(b, name, "histogram", help)
	var cum uint64
	for i, c := range h.counts {
		cum += c
		le := math.Inf(1)
		if i < len(h.bounds) {
			le = h.bounds[i]
		}
		fmt.Fprintf(b, "%s_bucket{le=%q} %d\n", name, formatFloat(le), cum)
	}
	fmt.Fprintf(b, "%s_sum %g\n%s_count %d\n", name, h.sum, name, h.n)
}
