package tokenizer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
)

// PieceType is SentencePiece's piece type (sentencepiece_model.proto, SentencePiece.Type).
type PieceType int32

const (
	PieceNormal      PieceType = 1
	PieceUnknown     PieceType = 2
	PieceControl     PieceType = 3
	PieceUserDefined PieceType = 4
	PieceUnused      PieceType = 5
	PieceByte        PieceType = 6
)

// Piece is one vocabulary entry.
type Piece struct {
	Text  string
	Score float32
	Type  PieceType
}

// ErrBadModel marks a tokenizer.model that is not a SentencePiece BPE model this package can run.
var ErrBadModel = errors.New("invalid tokenizer model")

// spModel is what encoding needs from tokenizer.model (a serialized sentencepiece ModelProto).
type spModel struct {
	pieces         []Piece
	bpe            bool // trainer_spec.model_type == BPE
	byteFallback   bool
	unkID          int32
	addDummyPrefix bool
	removeExtraWS  bool
	escapeWS       bool
	charsmap       bool // a non-empty precompiled normalization map (not supported)
}

// Protobuf field numbers (sentencepiece_model.proto).
const (
	fieldModelPieces     = 1
	fieldModelTrainer    = 2
	fieldModelNormalizer = 3
	fieldPieceText       = 1
	fieldPieceScore      = 2
	fieldPieceType       = 3
	fieldTrainerType     = 3
	fieldTrainerByteFB   = 35
	fieldTrainerUnkID    = 40
	fieldNormCharsmap    = 2
	fieldNormDummyPrefix = 3
	fieldNormExtraWS     = 4
	fieldNormEscapeWS    = 5
	modelTypeBPE         = 2
)

func loadSPModel(path string) (*spModel, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read tokenizer: %w", err)
	}
	m, err := parseSPModel(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// parseSPModel decodes the fields of ModelProto that encoding uses; proto defaults apply to absent fields.
func parseSPModel(data []byte) (*spModel, error) {
	m := &spModel{addDummyPrefix: true, removeExtraWS: true, escapeWS: true}
	err := walkProto(data, func(field int, wire int, v uint64, b []byte) error {
		switch field {
		case fieldModelPieces:
			p, err := parsePiece(b)
			if err != nil {
				return fmt.Errorf("piece %d: %w", len(m.pieces), err)
			}
			m.pieces = append(m.pieces, p)
		case fieldModelTrainer:
			return walkProto(b, func(field, wire int, v uint64, _ []byte) error {
				switch field {
				case fieldTrainerType:
					m.bpe = v == modelTypeBPE
				case fieldTrainerByteFB:
					m.byteFallback = v != 0
				case fieldTrainerUnkID:
					m.unkID = int32(v)
				}
				return nil
			})
		case fieldModelNormalizer:
			return walkProto(b, func(field, wire int, v uint64, b []byte) error {
				switch field {
				case fieldNormCharsmap:
					m.charsmap = len(b) > 0
				case fieldNormDummyPrefix:
					m.addDummyPrefix = v != 0
				case fieldNormExtraWS:
					m.removeExtraWS = v != 0
				case fieldNormEscapeWS:
					m.escapeWS = v != 0
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadModel, err)
	}
	switch {
	case len(m.pieces) == 0:
		return nil, fmt.Errorf("%w: no pieces", ErrBadModel)
	case !m.bpe:
		return nil, fmt.Errorf("%w: not a BPE model (LLaMA's tokenizer is BPE)", ErrBadModel)
	case m.charsmap:
		return nil, fmt.Errorf("%w: normalization maps are not supported (LLaMA's normalizer is identity)", ErrBadModel)
	case m.removeExtraWS:
		return nil, fmt.Errorf("%w: remove_extra_whitespaces is not supported (LLaMA keeps whitespace)", ErrBadModel)
	case m.unkID < 0 || int(m.unkID) >= len(m.pieces) || m.pieces[m.unkID].Type != PieceUnknown:
		return nil, fmt.Errorf("%w: unk_id %d is not an unknown piece", ErrBadModel, m.unkID)
	}
	return m, nil
}

func parsePiece(b []byte) (Piece, error) {
	p := Piece{Type: PieceNormal}
	err := walkProto(b, func(field, wire int, v uint64, b []byte) error {
		switch field {
		case fieldPieceText:
			p.Text = string(b)
		case fieldPieceScore:
			p.Score = math.Float32frombits(uint32(v))
		case fieldPieceType:
			p.Type = PieceType(v)
		}
		return nil
	})
	return p, err
}

// walkProto calls fn for each field of a protobuf message: v holds varint and fixed values, b the bytes of
// length-delimited ones. Malformed input is an error, never a panic.
func walkProto(data []byte, fn func(field, wire int, v uint64, b []byte) error) error {
	for len(data) > 0 {
		key, n := binary.Uvarint(data)
		if n <= 0 {
			return errors.New("bad field key")
		}
		data = data[n:]
		field, wire := int(key>>3), int(key&7)
		var v uint64
		var b []byte
		switch wire {
		case 0:
			v, n = binary.Uvarint(data)
			if n <= 0 {
				return fmt.Errorf("field %d: bad varint", field)
			}
			data = data[n:]
		case 1:
			if len(data) < 8 {
				return fmt.Errorf("field %d: truncated fixed64", field)
			}
			v, data = binary.LittleEndian.Uint64(data), data[8:]
		case 2:
			l, n := binary.Uvarint(data)
			if n <= 0 || l > uint64(len(data)-n) {
				return fmt.Errorf("field %d: bad length", field)
			}
			b, data = data[n:n+int(l)], data[n+int(l):]
		case 5:
			if len(data) < 4 {
				return fmt.Errorf("field %d: truncated fixed32", field)
			}
			v, data = uint64(binary.LittleEndian.Uint32(data)), data[4:]
		default:
			return fmt.Errorf("field %d: unsupported wire type %d", field, wire)
		}
		if err := fn(field, wire, v, b); err != nil {
			return err
		}
	}
	return nil
}
