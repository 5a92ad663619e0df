package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/nextchat/nextchat/bindings"
	"github.com/nextchat/nextchat/internal/engine"
	"github.com/nextchat/nextchat/internal/imageproc"
	"github.com/nextchat/nextchat/internal/prompt"
)

// requestErrors are the engine's and core's errors that mean the request was wrong, not the server: 400.
var requestErrors = []error{prompt.ErrBadPrompt, engine.ErrEmptyPrompt, bindings.ErrInvalidArgument,
	imageproc.ErrBadBox, imageproc.ErrFileTooLarge, imageproc.ErrTooManyPixels, imageproc.ErrEmptyImage,
	imageproc.ErrUnknownFormat, imageproc.ErrCorrupt, imageproc.ErrBadSize}

// classify maps an error to its answer: the server's own as they are; what the request got wrong (its prompt,
// image, boxes, arguments the core refused) 400; a request beyond the memory plan (context, sequences, boxes) 400
// with its limit named; a client that went away 499; anything else 500.
func classify(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	switch {
	case errors.Is(err, bindings.ErrOverPlan):
		return &apiError{http.StatusBadRequest, "context_length_exceeded", err.Error()}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &apiError{499, "request_cancelled", err.Error()}
	}
	for _, e := range requestErrors {
		if errors.Is(err, e) {
			return &apiError{http.StatusBadRequest, "invalid_request_error", err.Error()}
		}
	}
	return &apiError{http.StatusInternalServerError, "internal_error", err.Error()}
}
