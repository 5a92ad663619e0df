package server

import (
	"context"
	"net/http"

	"github.com/nextchat/nextchat/internal/answer"
	"github.com/nextchat/nextchat/internal/engine"
	"github.com/nextchat/nextchat/internal/imageproc"
)

// groundRequest asks where each referring expression is in one image (engine.Ground: NExT-Chat's REC prompt,
// "Answer: <at>" teacher-forced, the expressions sharing the image's prefill), any number of them.
type groundRequest struct {
	Model        string   `json:"model"`
	Image        string   `json:"image"` // a base64 data URL
	Expressions  []string `json:"expressions"`
	Masks        bool     `json:"masks"` // also segment each location with SAM
	IoUThreshold *float64 `json:"iou_threshold"`
	// ApplyEXIFOrientation as in chat completions.
	ApplyEXIFOrientation bool `json:"apply_exif_orientation"`
}

// groundAll grounds any number of expressions in groups of the plan's sequences; after the first group the image's
// features come from the feature cache and the rows every expression shares from the prefix cache (engine.Ground).
func (s *Server) groundAll(ctx context.Context, img *imageproc.RGB, exprs []string) ([]engine.Location, error) {
	group := s.eng.Plan.Request.MaxSequences
	var locs []engine.Location
	for first := 0; first < len(exprs); first += group {
		got, err := s.eng.Ground(ctx, img, nil, exprs[first:min(first+group, len(exprs))])
		if err != nil {
			return nil, err
		}
		locs = append(locs, got...)
	}
	return locs, nil
}

type groundResult struct {
	Expression string `json:"expression"`
	answer.Location
}

func (s *Server) ground(w http.ResponseWriter, r *http.Request) error {
	var req groundRequest
	if err := s.decodeBody(w, r, &req); err != nil {
		return err
	}
	if err := s.checkModel(req.Model); err != nil {
		return err
	}
	bad := func(format string, args ...any) error {
		return errorf(http.StatusBadRequest, "invalid_request_error", format, args...)
	}
	if len(req.Expressions) == 0 {
		return bad("expressions: empty")
	}
	for i, e := range req.Expressions {
		if e == "" {
			return bad("expressions[%d]: empty", i)
		}
	}
	threshold := s.opts.IoUThreshold
	if req.IoUThreshold != nil {
		if t := *req.IoUThreshold; !(t >= 0 && t <= 1) {
			return bad("iou_threshold: want a number in [0, 1], got %v", t)
		}
		threshold = *req.IoUThreshold
	}
	img, err := decodeDataURL(req.Image, imageproc.Options{ApplyEXIFOrientation: req.ApplyEXIFOrientation})
	if err != nil {
		return bad("image: %v", err)
	}
	release, err := s.admit()
	if err != nil {
		return err
	}
	defer release()
	logNote(r, "expressions", len(req.Expressions))
	locs, err := s.groundAll(r.Context(), img, req.Expressions)
	if err != nil {
		return err
	}
	described, err := answer.Locations(engine.Result{Locations: locs}, img)
	if err != nil {
		return err
	}
	s.metrics.add("nextchat_locations_total", len(locs))
	if req.Masks {
		if err := answer.AddMasks(s.eng, img, locs, described, threshold); err != nil {
			return err
		}
		s.metrics.add("nextchat_masks_total", len(locs))
	}
	out := make([]groundResult, len(described))
	for i := range described {
		out[i] = groundResult{Expression: req.Expressions[i], Location: described[i]}
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "grounding", "model": s.opts.ModelName, "results": out})
	return nil
}
