package server

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nextchat/nextchat/internal/golden"
	"github.com/nextchat/nextchat/internal/mask"
)

// browser starts headless Chromium for a test. Without one the test is skipped, saying so, unless
// NEXTCHAT_UI_TESTS is set (CI sets it after installing Chromium), where that is a failure.
func browser(t *testing.T) context.Context {
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("NEXTCHAT_UI_TESTS") != "" {
			t.Fatal("NEXTCHAT_UI_TESTS is set but no Chromium or Chrome is in PATH")
		}
		t.Skip("no Chromium or Chrome in PATH: the web UI tests need one (.ci/install-browser.sh installs it)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1200, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelBrowser := chromedp.NewContext(actx)
	// The browser lives as long as the context of its first call: start it without the test's deadline.
	require.NoError(t, chromedp.Do(ctx))
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() {
		cancelTimeout()
		cancelBrowser()
		cancelAlloc()
	})
	return ctx
}

// answerText waits for the n-th finished answer and returns its text (without its list of locations).
func answerText(t *testing.T, ctx context.Context, n int) string {
	sel := fmt.Sprintf("#messages > li.assistant.done:nth-child(%d)", 2*n)
	require.NoError(t, chromedp.Do(ctx, chromedp.WaitVisible(sel)))
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("`+sel+`").firstChild.textContent`))
	require.NoError(t, err)
	return text
}

// The page asks the API as a client does: the answer streams in, its location is listed and drawn, and the mask it
// decodes from the RLE has the server's area; a region dragged on the image is referred to as [0] in a follow-up
// question that carries the first answer's location; a refused question shows the server's error and the
// conversation goes on.
func TestWebUI(t *testing.T) {
	c, _ := goldenCase(t, "rec_forced_prefix")
	hs, _ := testServer(t, c, Options{})
	ctx := browser(t)
	image, err := filepath.Abs(filepath.Join(golden.Root(), c.Image))
	require.NoError(t, err)

	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(hs.URL),
		chromedp.WaitVisible("#ask"),
		chromedp.SetUploadFiles("#image", []string{image}),
		chromedp.Poll[chromedp.Void](`document.getElementById("canvas").width > 0`),
		chromedp.SetValue("#question", c.Prompt),
		chromedp.Click("#locate"),
		chromedp.SetValue("#max-tokens", "12"),
		chromedp.SetValue("#iou-threshold", "0"),
		chromedp.Click("#send"),
	))
	first := answerText(t, ctx, 1)
	areas, err := chromedp.Run(ctx, chromedp.Evaluate[[]int](
		`[...document.querySelectorAll("#messages li.assistant.done li")].map(li => Number(li.dataset.maskArea))`))
	require.NoError(t, err)
	want := complete(t, hs.URL, goldenRequest(t, c)).Choices[0].Message
	assert.Equal(t, *want.Content, first)
	require.Len(t, areas, len(want.Locations))
	for i, l := range want.Locations {
		assert.Positive(t, l.MaskArea)
		assert.Equal(t, l.MaskArea, areas[i], "location %d: the mask the page decoded from the RLE", i)
		// Its pixels where the server's are: the sum of the set pixels' row-major indices.
		m, err := mask.Decode(*l.MaskRLE)
		require.NoError(t, err)
		want := 0
		for p, b := range m.Bits {
			if b != 0 {
				want += p
			}
		}
		got, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf(
			`state.locations[%d].mask.bits.reduce((sum, b, p) => sum + (b ? p : 0), 0)`, i)))
		require.NoError(t, err)
		assert.Equal(t, want, got, "location %d: the decoded mask's pixels", i)
		// The box is drawn: the middle of its top edge has the location's colour (colors[0], #e6194b).
		b := *l.BoxPixel
		rgb, err := chromedp.Run(ctx, chromedp.Evaluate[[]int](fmt.Sprintf(`(() => {
			const c = document.getElementById("canvas"), k = c.width / state.image.naturalWidth;
			return Array.from(c.getContext("2d").getImageData(Math.floor(%f * k), Math.floor(%f * k), 1, 1).data); })()`,
			(b[0]+b[2])/2, b[1])))
		require.NoError(t, err)
		assert.InDeltaSlice(t, []int{230, 25, 75}, rgb[:3], 40, "location %d's box edge", i)
	}

	// The image is shown scaled to the column's width: a drag maps back to image pixels.
	rect, err := chromedp.Run(ctx, chromedp.Evaluate[struct{ Left, Top, Scale float64 }](`(() => {
		const c = document.getElementById("canvas"), r = c.getBoundingClientRect();
		return {Left: r.left, Top: r.top, Scale: r.width / state.image.naturalWidth}; })()`))
	require.NoError(t, err)
	require.Greater(t, rect.Scale, 1.0, "a 40-pixel-wide image fills the column")
	mouse := func(typ input.DispatchMouseEventType, x, y float64) chromedp.Action[chromedp.Void] {
		return chromedp.MouseEvent(typ, rect.Left+x*rect.Scale, rect.Top+y*rect.Scale, chromedp.ButtonLeft)
	}
	require.NoError(t, chromedp.Do(ctx,
		mouse(chromedp.MousePressed, 5, 10), mouse(chromedp.MouseMoved, 20, 30), mouse(chromedp.MouseReleased, 30, 40)))
	regions, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#regions li")].map(li => li.textContent)`))
	require.NoError(t, err)
	assert.Equal(t, []string{"5, 10, 30, 40"}, regions, "the region in image pixels")
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click("#locate"),
		chromedp.SendKeys("#question", "What is region [0]?\r"), // Enter sends
	))
	second := answerText(t, ctx, 2)

	// What the page sent: the conversation so far with the first answer's location, and the region.
	answered := map[string]any{"role": "assistant", "content": first, "locations": want.Locations}
	follow := goldenRequest(t, c)
	msgs := follow["messages"].([]map[string]any)
	follow["messages"] = []map[string]any{msgs[0], answered, {"role": "user", "content": "What is region [0]?"}}
	follow["max_tokens"], follow["regions"] = 12, [][4]float64{{5, 10, 30, 40}}
	assert.Equal(t, *complete(t, hs.URL, follow).Choices[0].Message.Content, second)

	require.NoError(t, chromedp.Do(ctx,
		chromedp.SetValue("#question", "What is region [5]?"),
		chromedp.Click("#send"),
		chromedp.Poll[chromedp.Void](`document.getElementById("error").textContent !== ""`),
	))
	refusal, err := chromedp.Run(ctx, chromedp.Text("#error"))
	require.NoError(t, err)
	assert.Contains(t, refusal, "refers to box 5")
	messages, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#messages > li").length`))
	require.NoError(t, err)
	assert.Equal(t, 4, messages, "the refused question left the conversation as it was")
}

// With an API key the page asks for it, and sends it once given.
func TestWebUIAsksForTheAPIKey(t *testing.T) {
	c, _ := goldenCase(t, "plain_greedy")
	hs, _ := testServer(t, c, Options{APIKey: "sesame"})
	ctx := browser(t)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(hs.URL),
		chromedp.WaitVisible("#api-key"),
		chromedp.SetValue("#question", "Hello"),
		chromedp.SetValue("#max-tokens", "3"),
		chromedp.Click("#send"),
		chromedp.Poll[chromedp.Void](`document.getElementById("error").textContent.includes("API key")`),
		chromedp.SendKeys("#api-key", "sesame\t"),
		chromedp.Poll[chromedp.Void](`document.getElementById("model").textContent !== ""`),
		chromedp.Click("#send"),
	))
	assert.NotEmpty(t, answerText(t, ctx, 1))
}

// A photo with an EXIF Orientation is shown upright, as browsers show it, and the page asks the model about it
// upright: its answer is the API's with apply_exif_orientation.
func TestWebUIShowsPhotosUpright(t *testing.T) {
	c, _ := goldenCase(t, "rec_forced_prefix")
	hs, _ := testServer(t, c, Options{})
	ctx := browser(t)
	photo := filepath.Join(golden.Root(), "testdata", "golden", "image", "src", "exif6_160x90.jpg") // stored 160 × 90
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(hs.URL),
		chromedp.WaitVisible("#ask"),
		chromedp.SetUploadFiles("#image", []string{photo}),
		chromedp.Poll[chromedp.Void](`document.getElementById("canvas").width > 0`),
		chromedp.Click("#locate"),
		chromedp.SetValue("#max-tokens", "6"),
		chromedp.SetValue("#iou-threshold", "0"),
		chromedp.SendKeys("#question", "Where is the sky?\r"),
	))
	size, err := chromedp.Run(ctx, chromedp.Evaluate[[]int](`[state.image.naturalWidth, state.image.naturalHeight]`))
	require.NoError(t, err)
	assert.Equal(t, []int{90, 160}, size, "shown upright")
	got := answerText(t, ctx, 1)
	b, err := os.ReadFile(photo)
	require.NoError(t, err)
	want := complete(t, hs.URL, map[string]any{"messages": []map[string]any{
		{"role": "user", "content": []map[string]any{{"type": "text", "text": "Where is the sky?"},
			{"type": "image_url", "image_url": map[string]string{"url": "data:image/jpeg;base64," + base64.StdEncoding.EncodeToString(b)}}}},
		{"role": "assistant", "content": "Answer: <at>"}}, "max_tokens": 6, "iou_threshold": 0, "apply_exif_orientation": true})
	assert.Equal(t, *want.Choices[0].Message.Content, got)
	require.NotEmpty(t, want.Choices[0].Message.Locations)
	assert.Equal(t, [2]int{160, 90}, want.Choices[0].Message.Locations[0].MaskRLE.Size)
}
