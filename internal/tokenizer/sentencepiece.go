package tokenizer

import "strings"

// sentencePiece is the plain SentencePiece processor over tokenizer.model: normalization (escape spaces,
// dummy prefix) and BPE; what sentencepiece's Encode does, before any transformers-specific handling.
type sentencePiece struct {
	model *spModel
	bpe   *bpe
}

func newSentencePiece(m *spModel) (*sentencePiece, error) {
	b, err := newBPE(m)
	if err != nil {
		return nil, err
	}
	return &sentencePiece{model: m, bpe: b}, nil
}

// normalize applies LLaMA's identity normalizer: spaces become ▁ and, when the model says so, one ▁ is
// prepended (the "dummy prefix").
func (sp *sentencePiece) normalize(text string) string {
	if sp.model.escapeWS {
		text = strings.ReplaceAll(text, " ", spaceMark)
	}
	if sp.model.addDummyPrefix {
		text = spaceMark + text
	}
	return text
}

// encode is sentencepiece's EncodeAsIds: the empty string has no ids.
func (sp *sentencePiece) encode(text string, out []int32) []int32 {
	if text == "" {
		return out
	}
	return sp.bpe.encode(sp.normalize(text), out)
}

// piece returns a vocabulary entry's text; ok is false for out-of-range ids.
func (sp *sentencePiece) piece(id int32) (Piece, bool) {
	if id < 0 || int(id) >= len(sp.model.pieces) {
		return Piece{}, false
	}
	return sp.model.pieces[id], true
}
