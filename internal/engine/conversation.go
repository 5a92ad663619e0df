package engine

import (
	"context"
	"slices"

	"github.com/nextchat/nextchat/internal/imageproc"
	"github.com/nextchat/nextchat/internal/prompt"
)

// Conversation is a multi-turn chat about at most one image: every question is asked with the conversation so far
// in the Vicuna format (§6.1: "USER: q1 ASSISTANT: a1</s>USER: q2 ASSISTANT:"), each earlier answer with the boxes
// of its locations (prompt.Turn.Boxes), so the model sees what it generated. The prefix cache continues the previous
// turn's sequence: a turn prefills only its new rows. A conversation is not safe for concurrent use (its turns are
// in order); many conversations may share an engine.
type Conversation struct {
	engine *Engine
	image  *imageproc.RGB
	boxes  [][4]float64 // user regions in the image's pixels, referred to as [i] in any question
	turns  []prompt.Turn
}

// NewConversation starts a conversation about img (nil: text only) with user regions boxes (pixels, xyxy).
func (e *Engine) NewConversation(img *imageproc.RGB, boxes [][4]float64) *Conversation {
	return &Conversation{engine: e, image: img, boxes: boxes}
}

// Ask answers question after the conversation so far and, when the answer succeeds, adds both to it. stream, when
// not nil, receives the answer's text as it becomes final (Run).
func (c *Conversation) Ask(ctx context.Context, question string, g GenParams, stream func(string) error) (Result, error) {
	turns := append(slices.Clone(c.turns), prompt.Turn{Role: prompt.User, Text: question})
	p, err := c.engine.Prepare(Request{Turns: turns, Image: c.image, Boxes: c.boxes})
	if err != nil {
		return Result{}, err
	}
	res, err := c.engine.Run(ctx, p, g, stream)
	if err != nil {
		return res, err
	}
	c.turns = append(turns, prompt.Turn{Role: prompt.Assistant, Text: res.Text, Boxes: answerBoxes(res)})
	return res, nil
}

// Turns is the conversation so far.
func (c *Conversation) Turns() []prompt.Turn { return slices.Clone(c.turns) }

// Reset forgets the conversation (the image and regions stay).
func (c *Conversation) Reset() { c.turns = nil }

// answerBoxes are the boxes of the answer's "<at> <boxes>" groups: every location but one whose <at> ended the
// answer (no <boxes> row followed it).
func answerBoxes(res Result) [][4]float32 {
	var boxes [][4]float32
	for _, l := range res.Locations {
		if l.TokenIndex+1 < len(res.Tokens) {
			boxes = append(boxes, l.Box)
		}
	}
	return boxes
}
