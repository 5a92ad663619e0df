// Package synth writes deterministic random NExT-Chat checkpoints with the official tensor names
// (MODEL_SPEC §7.2): tiny ones for tests, a ~1B-parameter one for CPU benchmarks, and the real 7B shapes for
// load and memory tests. Real weights are never downloadable here; these stand in for them everywhere.
package synth

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/nextchat/nextchat/bindings"
	"github.com/nextchat/nextchat/internal/config"
)

// presets derive from the released architecture by changing only what each purpose needs.
var presets = map[string]func(config.Config) config.Config{
	// tiny: for tests and goldens. Small widths and depths, but the real vocabulary (the real tokenizer works
	// on it) and the real SAM prompt/decoder widths (256, 8 heads, 2048 MLP), which CI runs at full size.
	// The SAM grid (256/16 = 16) is not a multiple of the window (6), so windowed attention pads as the
	// real 64→70 does.
	"tiny": func(c config.Config) config.Config {
		c.HiddenSize = 64
		c.IntermediateSize = 172
		c.NumHiddenLayers = 2
		c.NumAttentionHeads = 4
		c.NumKeyValueHeads = 4
		c.MaxPositionEmbeddings = 2048
		c.Vision = config.Vision{HiddenSize: 32, IntermediateSize: 80, NumHiddenLayers: 3, NumAttentionHeads: 2,
			ImageSize: 56, PatchSize: 14, LayerNormEps: c.Vision.LayerNormEps, HiddenAct: c.Vision.HiddenAct}
		c.MMHiddenSize = c.Vision.HiddenSize
		c.LocHiddenSize = 48
		c.SAM.ImageSize = 256
		c.SAM.EncoderEmbedDim = 32
		c.SAM.EncoderDepth = 4
		c.SAM.EncoderNumHeads = 2
		c.SAM.EncoderMLPDim = 64
		c.SAM.WindowSize = 6
		c.SAM.GlobalAttnIndexes = []int{1, 3}
		return c
	},
	// small: CPU benchmarks. A ~1B-parameter LLM; CLIP and SAM at their real sizes.
	"small": func(c config.Config) config.Config {
		c.HiddenSize = 2048
		c.IntermediateSize = 5632
		c.NumHiddenLayers = 16
		c.NumAttentionHeads = 16
		c.NumKeyValueHeads = 16
		return c
	},
	"7b": func(c config.Config) config.Config { return c },
}

// PresetNames lists the presets, sorted.
func PresetNames() []string {
	names := make([]string, 0, len(presets))
	for n := range presets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ResolveConfig returns a preset's config, or reads a JSON file (a config.json, over the released defaults)
// when nameOrPath is not a preset name. The result is validated by the core.
func ResolveConfig(nameOrPath string) (config.Config, error) {
	defaults := bindings.DefaultConfig()
	var cfg config.Config
	if preset, ok := presets[nameOrPath]; ok {
		cfg = preset(defaults)
	} else {
		data, err := os.ReadFile(nameOrPath)
		if err != nil {
			return config.Config{}, fmt.Errorf("config %q is neither a preset (%s) nor a readable file: %w",
				nameOrPath, strings.Join(PresetNames(), ", "), err)
		}
		if cfg, err = config.Parse(data, defaults); err != nil {
			return config.Config{}, fmt.Errorf("%s: %w", nameOrPath, err)
		}
	}
	if err := bindings.ValidateConfig(cfg); err != nil {
		return config.Config{}, fmt.Errorf("config %s: %w", nameOrPath, err)
	}
	return cfg, nil
}
