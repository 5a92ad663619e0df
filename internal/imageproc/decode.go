package imageproc

import (
	"bytes"
	"fmt"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"

	"golang.org/x/image/bmp"
	"golang.org/x/image/webp"
)

// Default limits, used where a Limits field is zero.
const (
	// DefaultMaxBytes caps the encoded file size (64 MiB).
	DefaultMaxBytes = 64 << 20
	// DefaultMaxPixels caps width×height. It is Pillow's MAX_IMAGE_PIXELS
	// (about 89.5 MP), at which Pillow starts warning about decompression
	// bombs; an RGB image of that size is 256 MiB.
	DefaultMaxPixels = 89_478_485
)

// Limits bounds the resources one Decode may use. A zero field means the
// default; a negative one means no limit.
type Limits struct {
	MaxBytes  int64 // encoded file size in bytes
	MaxPixels int64 // width × height as declared by the file header
}

func (l Limits) maxBytes() int64  { return pick(l.MaxBytes, DefaultMaxBytes) }
func (l Limits) maxPixels() int64 { return pick(l.MaxPixels, DefaultMaxPixels) }

func pick(v, def int64) int64 {
	if v == 0 {
		return def
	}
	return v
}

// Options configures Decode.
type Options struct {
	Limits

	// ApplyEXIFOrientation rotates/flips the pixels as the EXIF Orientation
	// tag (JPEG APP1, PNG eXIf, WebP EXIF) says, like PIL's
	// ImageOps.exif_transpose. It is off by default because NExT-Chat never
	// applies it: the reference loads files with Image.open(path).convert("RGB"),
	// so the model saw (and the boxes it predicts refer to) the pixels as stored.
	// Only the gradio web demo sees transposed pixels, because gradio applies
	// exif_transpose while decoding uploads. Turn it on to mimic that demo, and
	// then map boxes against the transposed size.
	ApplyEXIFOrientation bool
}

// Info describes a decoded file.
type Info struct {
	// Format is "jpeg", "png", "gif", "webp" or "bmp".
	Format string
	// Mode is the Pillow mode the file opens as ("RGB", "RGBA", "L", "LA",
	// "P", "1", "I;16", "CMYK"): the source of the RGB conversion.
	Mode string
	// Width and Height are the stored size, before any orientation.
	Width, Height int
	// Orientation is the EXIF Orientation tag (1..8), 0 when absent or unreadable.
	Orientation int
	// Oriented reports whether Orientation was applied to the returned pixels.
	Oriented bool
}

// Decode reads one image from r and returns it as Pillow's convert("RGB")
// would see it. See DecodeBytes.
func Decode(r io.Reader, opts Options) (*RGB, Info, error) {
	data, err := readLimited(r, opts.maxBytes())
	if err != nil {
		return nil, Info{}, err
	}
	return DecodeBytes(data, opts)
}

func readLimited(r io.Reader, max int64) ([]byte, error) {
	if max < 0 {
		data, err := io.ReadAll(r)
		if err != nil {
			return nil, fmt.Errorf("imageproc: reading image: %w", err)
		}
		return data, nil
	}
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, fmt.Errorf("imageproc: reading image: %w", err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrFileTooLarge, max)
	}
	return data, nil
}

// DecodeBytes decodes a JPEG, PNG, GIF (first frame), WebP or BMP file.
//
// The header is checked against opts.Limits before any pixel data is
// decoded, so a small file that declares a huge image costs nothing. Errors
// wrap ErrFileTooLarge, ErrTooManyPixels, ErrEmptyImage, ErrUnknownFormat or
// ErrCorrupt; malformed input never panics.
func DecodeBytes(data []byte, opts Options) (*RGB, Info, error) {
	if max := opts.maxBytes(); max >= 0 && int64(len(data)) > max {
		return nil, Info{}, fmt.Errorf("%w: %d bytes, limit %d", ErrFileTooLarge, len(data), max)
	}
	f := sniff(data)
	if f == nil {
		return nil, Info{}, ErrUnknownFormat
	}
	info := Info{Format: f.name}
	cfg, err := safeConfig(f, data)
	if err != nil {
		return nil, info, fmt.Errorf("%w: %s header: %v", ErrCorrupt, f.name, err)
	}
	info.Width, info.Height = cfg.Width, cfg.Height
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, info, fmt.Errorf("%w: %s declares %dx%d", ErrEmptyImage, f.name, cfg.Width, cfg.Height)
	}
	if max := opts.maxPixels(); max >= 0 && int64(cfg.Width)*int64(cfg.Height) > max {
		return nil, info, fmt.Errorf("%w: %dx%d = %d pixels, limit %d",
			ErrTooManyPixels, cfg.Width, cfg.Height, int64(cfg.Width)*int64(cfg.Height), max)
	}
	img, err := safeDecode(f, data)
	if err != nil {
		return nil, info, fmt.Errorf("%w: %s: %v", ErrCorrupt, f.name, err)
	}
	rgb, mode, err := f.toRGB(data, cfg, img)
	if err != nil {
		return nil, info, fmt.Errorf("%w: %s: %v", ErrCorrupt, f.name, err)
	}
	info.Mode = mode
	if rgb.W != cfg.Width || rgb.H != cfg.Height {
		return nil, info, fmt.Errorf("%w: %s header says %dx%d, pixels are %dx%d",
			ErrCorrupt, f.name, cfg.Width, cfg.Height, rgb.W, rgb.H)
	}
	if f.exif != nil {
		info.Orientation = orientationFromTIFF(f.exif(data))
	}
	if opts.ApplyEXIFOrientation && info.Orientation >= 2 && info.Orientation <= 8 {
		rgb = Orient(rgb, info.Orientation)
		info.Oriented = true
	}
	return rgb, info, nil
}

// format is one supported container.
type format struct {
	name   string
	magic  func([]byte) bool
	config func(io.Reader) (image.Config, error)
	decode func(io.Reader) (image.Image, error)
	// toRGB converts the decoded image, with the file at hand for what the Go
	// decoders drop (PNG bit depth, GIF palettes), and returns Pillow's mode.
	toRGB func(data []byte, cfg image.Config, img image.Image) (*RGB, string, error)
	// exif returns the TIFF-structured EXIF block, nil when absent.
	exif func([]byte) []byte
}

var formats = []*format{
	{name: "jpeg", magic: prefix("\xff\xd8\xff"), config: jpeg.DecodeConfig, decode: jpeg.Decode,
		toRGB: jpegToRGB, exif: jpegEXIF},
	{name: "png", magic: prefix("\x89PNG\r\n\x1a\n"), config: png.DecodeConfig, decode: png.Decode,
		toRGB: pngToRGB, exif: pngEXIF},
	{name: "gif", magic: func(b []byte) bool { return prefix("GIF87a")(b) || prefix("GIF89a")(b) },
		config: gif.DecodeConfig, decode: gif.Decode, toRGB: gifToRGB},
	{name: "webp", magic: func(b []byte) bool { return len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP" },
		config: webp.DecodeConfig, decode: webp.Decode, toRGB: webpToRGB, exif: webpEXIF},
	{name: "bmp", magic: prefix("BM"), config: bmp.DecodeConfig, decode: bmp.Decode, toRGB: bmpToRGB},
}

func prefix(p string) func([]byte) bool {
	return func(b []byte) bool { return len(b) >= len(p) && string(b[:len(p)]) == p }
}

func sniff(data []byte) *format {
	for _, f := range formats {
		if f.magic(data) {
			return f
		}
	}
	return nil
}

// safeConfig and safeDecode turn a decoder panic (a bug in a decoder, but
// reachable from untrusted bytes) into an error.
func safeConfig(f *format, data []byte) (cfg image.Config, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("decoder panic: %v", r)
		}
	}()
	return f.config(bytes.NewReader(data))
}

func safeDecode(f *format, data []byte) (img image.Image, err error) {
	defer func() {
		if r := recover(); r != nil {
			img, err = nil, fmt.Errorf("decoder panic: %v", r)
		}
	}()
	return f.decode(bytes.NewReader(data))
}
