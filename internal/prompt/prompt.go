// Package prompt builds NExT-Chat's prompts: the Vicuna v1.1 conversation template (MODEL_SPEC §6.1), the
// <image> placeholder expansion (§2.1) and region references "[0]", "[1 2]" (§3.3).
package prompt

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// System is Vicuna v1.1's system prompt, as NExT-Chat's conversation template has it.
const System = "A chat between a curious user and an artificial intelligence assistant. " +
	"The assistant gives helpful, detailed, and polite answers to the user's questions."

// Placeholders in user text, and the tokens they expand to (§2.1).
const (
	ImagePlaceholder = "<image>"
	imStart          = "<im_start>"
	imPatch          = "<im_patch>"
	imEnd            = "<im_end>"
	// BoxesSlot is the token whose row carries a box's embedding (§2.2 step 4).
	BoxesSlot = "<boxes>"
	// Location is one location's token group: the <at> trigger and the <boxes> slot (§2.1).
	Location = "<at> " + BoxesSlot
)

// Role of a turn.
type Role int

const (
	User Role = iota
	Assistant
)

// Turn is one message of a conversation.
type Turn struct {
	Role Role
	Text string
	// Boxes: in an assistant turn (an earlier answer), the box of each "<at> <boxes>" group of Text in order —
	// normalized xyxy in the expand2square frame (§3.3), as the answer's locations were decoded. Its <boxes> rows
	// take loc_encoder of them, the embedding the model was fed when it generated them (§2.3).
	Boxes [][4]float32
}

// ErrBadPrompt marks a conversation that cannot be rendered (roles out of order, bad region references).
var ErrBadPrompt = errors.New("invalid prompt")

// Render writes a conversation in the Vicuna v1.1 format (SeparatorStyle.ADD_COLON_TWO, sep " ", sep2 "</s>"):
// system, then "USER: msg " and "ASSISTANT: msg</s>" per turn, ending with "ASSISTANT:" for the answer to
// generate. Turns alternate starting with the user; a final assistant turn is a prefix of the answer to
// continue from (rendered "ASSISTANT: prefix", no "</s>"). With imageTokens > 0 the first user turn gets
// "<image> " in front unless it already has <image> (NExT-Chat's interactive dataset), and every <image>
// becomes <im_start> + imageTokens × <im_patch> + <im_end>.
func Render(turns []Turn, imageTokens int) (string, error) {
	if len(turns) == 0 || turns[0].Role != User {
		return "", fmt.Errorf("%w: a conversation starts with a user turn", ErrBadPrompt)
	}
	var b strings.Builder
	b.WriteString(System)
	b.WriteString(" ")
	for i, t := range turns {
		if want := Role(i % 2); t.Role != want {
			return "", fmt.Errorf("%w: turn %d should be from the %s", ErrBadPrompt, i, roleName(want))
		}
		text := t.Text
		if i == 0 && imageTokens > 0 && !strings.Contains(text, ImagePlaceholder) {
			text = ImagePlaceholder + " " + text
		}
		switch {
		case t.Role == User:
			b.WriteString("USER: " + text + " ")
		case i == len(turns)-1:
			b.WriteString("ASSISTANT: " + text)
			return expandImages(b.String(), imageTokens)
		default:
			b.WriteString("ASSISTANT: " + text + "</s>")
		}
	}
	b.WriteString("ASSISTANT:")
	return expandImages(b.String(), imageTokens)
}

func roleName(r Role) string {
	if r == User {
		return "user"
	}
	return "assistant"
}

// expandImages replaces every <image> with the image's token block; <image> without an image is an error,
// since its rows would have no features to carry.
func expandImages(text string, imageTokens int) (string, error) {
	if !strings.Contains(text, ImagePlaceholder) {
		return text, nil
	}
	if imageTokens <= 0 {
		return "", fmt.Errorf("%w: the prompt has <image> but no image was given", ErrBadPrompt)
	}
	block := imStart + strings.Repeat(imPatch, imageTokens) + imEnd
	return strings.ReplaceAll(text, ImagePlaceholder, block), nil
}

// regionRef matches a region reference: a bracketed list of box indices, "[0]", "[1 2]", "[0, 3]".
var regionRef = regexp.MustCompile(`\[\s*\d+(?:\s*,?\s*\d+)*\s*\]`)

// ExpandRegions rewrites each region reference "[i j ...]" in user text as one Location group per index
// (§3.3) and returns the box indices in order of appearance, which is the order the <boxes> slots take the
// boxes in. Indices must be below numBoxes.
func ExpandRegions(text string, numBoxes int) (string, []int, error) {
	var order []int
	var err error
	out := regionRef.ReplaceAllStringFunc(text, func(ref string) string {
		fields := strings.FieldsFunc(strings.Trim(ref, "[] "), func(r rune) bool { return r == ',' || r == ' ' })
		groups := make([]string, 0, len(fields))
		for _, f := range fields {
			i, convErr := strconv.Atoi(f)
			if convErr != nil || i >= numBoxes {
				if err == nil {
					err = fmt.Errorf("%w: region %s refers to box %s, but %d box(es) were given", ErrBadPrompt, ref, f, numBoxes)
				}
				return ref
			}
			order = append(order, i)
			groups = append(groups, Location)
		}
		return strings.Join(groups, " ")
	})
	if err != nil {
		return "", nil, err
	}
	return out, order, nil
}
