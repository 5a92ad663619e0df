package engine

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/nextchat/nextchat/internal/imageproc"
)

// imageKey is the content hash of a decoded image.
type imageKey [sha256.Size]byte

func keyOf(img *imageproc.RGB) imageKey {
	h := sha256.New()
	var dims [8]byte
	binary.LittleEndian.PutUint32(dims[:4], uint32(img.W))
	binary.LittleEndian.PutUint32(dims[4:], uint32(img.H))
	h.Write(dims[:])
	h.Write(img.Pix)
	var k imageKey
	copy(k[:], h.Sum(nil))
	return k
}

// featureCache is a small LRU of image features by content (CLIP's projected features, SAM's embeddings): a
// conversation about one image, or many requests about a popular one, encode it once. Its capacity is the memory
// plan's (docs/ARCHITECTURE.md "Memory plan"); 0 keeps nothing.
type featureCache struct {
	capacity int
	mu       sync.Mutex
	order    []imageKey // least recently used first
	byKey    map[imageKey][]float32
	// computing: images being encoded now. Requests about the same new image at once (a popular image, a page that
	// asks twice) wait for the first one's encoder call instead of running it again.
	computing map[imageKey]*encoding
}

// encoding is one encoder call in progress: done closes when f and err are set.
type encoding struct {
	done chan struct{}
	f    []float32
	err  error
}

// get returns the features of k: cached, being computed (it waits for that call), or computed now by compute and
// cached when it succeeds. A failure reaches every caller waiting for it and is not cached.
func (c *featureCache) get(k imageKey, compute func() ([]float32, error)) ([]float32, error) {
	c.mu.Lock()
	if f, ok := c.byKey[k]; ok {
		c.touch(k)
		c.mu.Unlock()
		return f, nil
	}
	if enc, ok := c.computing[k]; ok {
		c.mu.Unlock()
		<-enc.done
		return enc.f, enc.err
	}
	enc := &encoding{done: make(chan struct{})}
	if c.computing == nil {
		c.computing = map[imageKey]*encoding{}
	}
	c.computing[k] = enc
	c.mu.Unlock()

	returned := false
	defer func() { // also when compute panics: its waiters get an error instead of waiting forever
		if !returned {
			enc.err = fmt.Errorf("image encoder panicked")
		}
		c.mu.Lock()
		delete(c.computing, k)
		if enc.err == nil {
			c.put(k, enc.f)
		}
		c.mu.Unlock()
		close(enc.done)
	}()
	enc.f, enc.err = compute()
	returned = true
	return enc.f, enc.err
}

// put caches f as k's features, dropping the least recently used beyond the capacity. Under c.mu.
func (c *featureCache) put(k imageKey, f []float32) {
	if c.capacity <= 0 {
		return
	}
	if c.byKey == nil {
		c.byKey = map[imageKey][]float32{}
	}
	if _, ok := c.byKey[k]; !ok && len(c.order) == c.capacity {
		delete(c.byKey, c.order[0])
		c.order = c.order[1:]
	}
	c.byKey[k] = f
	c.touch(k)
}

func (c *featureCache) touch(k imageKey) {
	for i, o := range c.order {
		if o == k {
			c.order = append(c.order[:i], c.order[i+1:]...)
			break
		}
	}
	c.order = append(c.order, k)
}

// ImageFeatures returns the projected CLIP features of an image (§1.2–1.4): white expand2square, PIL-exact
// bicubic resize, normalization, CLIP tower, projector. Cached by content.
func (e *Engine) ImageFeatures(img *imageproc.RGB) ([]float32, error) {
	return e.images.get(keyOf(img), func() ([]float32, error) {
		pixels, err := imageproc.CLIPPixels(img, e.Dir.Config.Vision.ImageSize)
		if err != nil {
			return nil, fmt.Errorf("CLIP preprocessing: %w", err)
		}
		projected, _, err := e.Model.EncodeImages(pixels, 1)
		return projected, err
	})
}

// ImageStages recomputes an image's vision stages for dumps (`run --dump`): CLIP pixels [3,S,S], CLIP
// features [P, vision hidden] and projected features [P, hidden], under the golden names of tools/reference.
func (e *Engine) ImageStages(img *imageproc.RGB) (pixels, clip, projected []float32, err error) {
	if pixels, err = imageproc.CLIPPixels(img, e.Dir.Config.Vision.ImageSize); err != nil {
		return nil, nil, nil, err
	}
	projected, clip, err = e.Model.EncodeImages(pixels, 1)
	return pixels, clip, projected, err
}

// NormalizeBoxes maps user boxes in image pixels into the normalized expand2square frame the model reads
// (§3.3); boxes outside the image, inverted or not finite are errors.
func NormalizeBoxes(img *imageproc.RGB, boxes [][4]float64) ([][4]float32, error) {
	out := make([][4]float32, len(boxes))
	for i, b := range boxes {
		n, err := imageproc.BoxToSquareNorm(imageproc.Box{X1: b[0], Y1: b[1], X2: b[2], Y2: b[3]}, img.W, img.H)
		if err != nil {
			return nil, fmt.Errorf("box %d: %w", i, err)
		}
		out[i] = [4]float32{float32(n.X1), float32(n.Y1), float32(n.X2), float32(n.Y2)}
	}
	return out, nil
}

// PixelBox maps a model box (normalized, expand2square frame) to the original image's pixels (§3): raw, and
// clipped to the image for display and APIs.
func PixelBox(box [4]float32, width, height int) (raw, clipped [4]float64, err error) {
	p, err := imageproc.BoxFromSquareNorm(imageproc.Box{X1: float64(box[0]), Y1: float64(box[1]),
		X2: float64(box[2]), Y2: float64(box[3])}, width, height)
	if err != nil {
		return raw, clipped, err
	}
	raw = [4]float64{p.X1, p.Y1, p.X2, p.Y2}
	limit := [4]float64{float64(width), float64(height), float64(width), float64(height)}
	for i := range raw {
		clipped[i] = min(max(raw[i], 0), limit[i])
	}
	return raw, clipped, nil
}
