// Package imageproc turns image files into the two model inputs of NExT-Chat,
// reproducing the Python reference (Pillow 13 + transformers 4.31) bit for bit.
//
// The pipeline has three stages:
//
//   - Decode reads JPEG, PNG, GIF (first frame), WebP and BMP under explicit
//     size limits and converts the pixels to 8-bit RGB exactly as Pillow's
//     Image.convert("RGB") does: alpha is dropped, never composited; palette
//     transparency is ignored; 16-bit grey saturates at 255; 16-bit colour keeps
//     the high byte; 4-channel JPEGs are inverted (Adobe convention) and then
//     converted with Pillow's integer CMYK formula. EXIF orientation is NOT
//     applied by default, because the reference never calls exif_transpose
//     (see Options.ApplyEXIFOrientation). PNG, GIF, BMP and lossless and lossy
//     WebP match Pillow exactly (libwebp's fancy upsampler and YUV→RGB are
//     reproduced). JPEG uses Go's entropy decoding and IDCT, then libjpeg-turbo's
//     fancy chroma upsampling and colour conversion: Go's IDCT is not libjpeg's,
//     so a few samples differ by 1-3 steps.
//   - Resize is a port of Pillow's ImagingResample for 8-bit images: separable
//     antialiased convolution with coefficients computed in float64, quantized to
//     22-bit fixed point, a uint8 intermediate between the passes, and Pillow
//     13's rule for which pass runs first. It is integer-exact, not a float
//     approximation: the float version is off by up to 2 steps at rounding ties.
//   - CLIPPixels (white Expand2Square, bicubic, CLIP mean/std) and SAMPixels
//     (bilinear long-side resize, SAM mean/std, centred zero padding) produce the
//     CHW float32 tensors; the box helpers map boxes between original pixels and
//     the normalized square frame the model works in.
//
// The algorithms follow tools/reference/PIL_RESAMPLING_NOTES.md and
// MODEL_SPEC.md §1.4, §3 and §4; testdata/golden/image holds the goldens the
// tests compare against.
package imageproc
