package engine

import (
	"fmt"
	"strings"

	"github.com/nextchat/nextchat/bindings"
	"github.com/nextchat/nextchat/internal/imageproc"

	"github.com/nextchat/nextchat/internal/prompt"
	"github.com/nextchat/nextchat/internal/tokenizer"
)

// Request is what a caller asks: a conversation, optionally one image and the boxes its region references
// "[i]" point to. Image and Boxes (pixels) are the usual way in; ImageFeatures and RegionBoxes give the
// same already computed (projected features, normalized boxes), as tests against the reference do.
type Request struct {
	Turns []prompt.Turn
	Image *imageproc.RGB
	Boxes [][4]float64 // user boxes in Image's pixels, xyxy
	// ImageFeatures: [image tokens × hidden] from the vision tower and projector; nil for a text-only chat.
	ImageFeatures []float32
	// RegionBoxes: user boxes, normalized xyxy in the expand2square frame (§3.3), indexed by "[i]".
	RegionBoxes [][4]float32
	// AnswerPrefix: the start of the assistant's answer, teacher-forced as generated tokens (so an <at> in it
	// is located like a generated one, as NExT-Chat's generate_rec does for "Answer: <at> <boxes> .").
	AnswerPrefix string
}

// Prepare builds the prompt rows (§2.2): region references become <at> <boxes> groups, the conversation is
// rendered with the Vicuna template and tokenized, the image features fill the rows after <im_start>, and the
// k-th user <boxes> row takes loc_encoder of the k-th referenced box.
func (e *Engine) Prepare(req Request) (Prepared, error) {
	cfg := e.Dir.Config
	if n := max(len(req.Boxes), len(req.RegionBoxes)); n > e.Plan.Request.MaxLocations {
		return Prepared{}, e.tooManyBoxes(n)
	}
	if req.Image != nil {
		var err error
		if req.ImageFeatures, err = e.ImageFeatures(req.Image); err != nil {
			return Prepared{}, err
		}
		if req.RegionBoxes, err = NormalizeBoxes(req.Image, req.Boxes); err != nil {
			return Prepared{}, err
		}
	} else if len(req.Boxes) > 0 {
		return Prepared{}, fmt.Errorf("%w: boxes need an image (they are in its pixels)", prompt.ErrBadPrompt)
	}
	imageTokens := 0
	if req.ImageFeatures != nil {
		imageTokens = cfg.ImageTokens()
		if len(req.ImageFeatures) != imageTokens*cfg.HiddenSize {
			return Prepared{}, fmt.Errorf("image features: %d values, want %d tokens × %d", len(req.ImageFeatures),
				imageTokens, cfg.HiddenSize)
		}
	}
	p, boxes, err := promptRows(e.Tok, req.Turns, req.RegionBoxes, imageTokens, req.AnswerPrefix)
	if err != nil {
		return Prepared{}, err
	}
	if imageTokens == 0 && len(boxes) == 0 {
		return p, nil
	}
	H := cfg.HiddenSize
	p.Embeds = make([]float32, len(p.IDs)*H)
	p.EmbedRows = make([]bool, len(p.IDs))
	if err := spliceImage(p, req.ImageFeatures, imageTokens, H); err != nil {
		return Prepared{}, err
	}
	if len(boxes) > 0 {
		if len(boxes) > e.Plan.Request.MaxLocations {
			return Prepared{}, e.tooManyBoxes(len(boxes))
		}
		embeds, err := e.encodeBoxes(boxes)
		if err != nil {
			return Prepared{}, err
		}
		if err := spliceBoxes(p, embeds, int32(cfg.BoxesTokenID), H); err != nil {
			return Prepared{}, err
		}
		p.RowBoxes = rowBoxes(p.IDs, boxes, int32(cfg.BoxesTokenID))
	}
	return p, nil
}

// promptRows renders and tokenizes a conversation (§2.2 steps 1–2): region references in user turns become
// <at> <boxes> groups, and the image takes imageTokens rows. It returns the box of every <boxes> row in order: the
// referenced region boxes of user turns, the given boxes of earlier answers. The answer prefix, when set, is
// tokenized in context (the conversation ending "ASSISTANT: prefix") into Forced; the prompt's own ids must be a
// prefix of those, or the split would change them.
func promptRows(tok *tokenizer.Tokenizer, turns []prompt.Turn, regionBoxes [][4]float32, imageTokens int,
	answerPrefix string) (Prepared, [][4]float32, error) {
	expanded := make([]prompt.Turn, len(turns))
	var boxes [][4]float32
	for i, t := range turns {
		expanded[i] = t
		if t.Role != prompt.User {
			if n := strings.Count(t.Text, prompt.BoxesSlot); n != len(t.Boxes) {
				return Prepared{}, nil, fmt.Errorf("%w: turn %d has %d location(s) but %d box(es)", prompt.ErrBadPrompt, i,
					n, len(t.Boxes))
			}
			boxes = append(boxes, t.Boxes...)
			continue
		}
		if len(t.Boxes) > 0 {
			return Prepared{}, nil, fmt.Errorf("%w: turn %d: a user turn's boxes are region boxes, referred to as [i]",
				prompt.ErrBadPrompt, i)
		}
		text, refs, err := prompt.ExpandRegions(t.Text, len(regionBoxes))
		if err != nil {
			return Prepared{}, nil, err
		}
		expanded[i].Text = text
		for _, r := range refs {
			boxes = append(boxes, regionBoxes[r])
		}
	}
	text, err := prompt.Render(expanded, imageTokens)
	if err != nil {
		return Prepared{}, nil, err
	}
	p := Prepared{IDs: tok.Encode(text, true)}
	if answerPrefix == "" {
		return p, boxes, nil
	}
	text, err = prompt.Render(append(expanded, prompt.Turn{Role: prompt.Assistant, Text: answerPrefix}), imageTokens)
	if err != nil {
		return Prepared{}, nil, err
	}
	all := tok.Encode(text, true)
	if len(all) <= len(p.IDs) || !equalIDs(all[:len(p.IDs)], p.IDs) {
		return Prepared{}, nil, fmt.Errorf("%w: the answer prefix %q changes how the prompt before it tokenizes",
			prompt.ErrBadPrompt, answerPrefix)
	}
	p.Forced = all[len(p.IDs):]
	return p, boxes, nil
}

func equalIDs(a, b []int32) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return len(a) == len(b)
}

// spliceImage writes the features into the imageTokens rows after every <im_start> (§2.2 step 3).
func spliceImage(p Prepared, features []float32, imageTokens, H int) error {
	for i, id := range p.IDs {
		if id != tokenizer.ImStartID {
			continue
		}
		if i+imageTokens >= len(p.IDs) {
			return fmt.Errorf("prompt ends inside an image block")
		}
		copy(p.Embeds[(i+1)*H:(i+1+imageTokens)*H], features)
		for r := i + 1; r <= i+imageTokens; r++ {
			p.EmbedRows[r] = true
		}
	}
	return nil
}

// rowBoxes maps the k-th <boxes> row to the k-th box (spliceBoxes has checked that they pair up).
func rowBoxes(ids []int32, boxes [][4]float32, boxesID int32) map[int][4]float32 {
	m := make(map[int][4]float32, len(boxes))
	k := 0
	for r, id := range ids {
		if id == boxesID {
			m[r] = boxes[k]
			k++
		}
	}
	return m
}

// spliceBoxes gives the k-th <boxes> row the k-th box embedding (§2.2 step 4: row-major assignment).
func spliceBoxes(p Prepared, embeds []float32, boxesID int32, H int) error {
	k := 0
	for i, id := range p.IDs {
		if id != boxesID {
			continue
		}
		if k*H >= len(embeds) {
			return fmt.Errorf("the prompt has more <boxes> tokens than region boxes")
		}
		copy(p.Embeds[i*H:(i+1)*H], embeds[k*H:(k+1)*H])
		p.EmbedRows[i] = true
		k++
	}
	if k*H != len(embeds) {
		return fmt.Errorf("%d region boxes but %d <boxes> tokens in the prompt", len(embeds)/H, k)
	}
	return nil
}

// encodeBoxes runs loc_encoder on boxes under e.mu: the core refuses a step while it runs (nc_encode_boxes shares the
// step's workspace), and other requests may be stepping.
func (e *Engine) encodeBoxes(boxes [][4]float32) ([]float32, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.Model.EncodeBoxes(boxes)
}

func (e *Engine) tooManyBoxes(n int) error {
	return fmt.Errorf("%w: %d region boxes, the plan has %d per request", bindings.ErrOverPlan, n, e.Plan.Request.MaxLocations)
}
