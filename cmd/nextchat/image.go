package main

import (
	"fmt"
	"github.com/nextchat/nextchat/internal/answer"
	"image/png"
	"os"
	"strconv"
	"strings"

	"github.com/nextchat/nextchat/internal/annotate"
	"github.com/nextchat/nextchat/internal/imageproc"
)

// decodeImageFile reads an image as the reference does (PIL's convert("RGB"), no EXIF rotation), with the
// default size limits.
func decodeImageFile(path string) (*imageproc.RGB, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, _, err := imageproc.Decode(f, imageproc.Options{})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return img, nil
}

// parseBoxes reads "x1,y1,x2,y2" boxes.
func parseBoxes(specs []string) ([][4]float64, error) {
	var out [][4]float64
	for _, s := range specs {
		parts := strings.Split(s, ",")
		if len(parts) != 4 {
			return nil, fmt.Errorf("box %q: want x1,y1,x2,y2", s)
		}
		var b [4]float64
		for i, p := range parts {
			v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
			if err != nil {
				return nil, fmt.Errorf("box %q: %v", s, err)
			}
			b[i] = v
		}
		out = append(out, b)
	}
	return out, nil
}

// writeAnnotated draws the answer's locations on the image (MODEL_SPEC §6.4) and writes a PNG.
func writeAnnotated(path string, img *imageproc.RGB, locs []answer.Location) error {
	items := make([]annotate.Item, 0, len(locs))
	for _, l := range locs {
		items = append(items, annotate.Item{Box: *l.BoxPixelRaw, Mask: l.Mask, Label: strconv.Itoa(l.Index)})
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, annotate.Draw(img, items)); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
