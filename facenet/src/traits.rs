//! The two seams of this crate: images → vectors ([`Encoder`]) and vectors → images
//! ([`ImageDecoder`]).

use candle_core::{DType, Tensor};

use crate::config::ImageShape;
use crate::error::{FacenetError, Result};

/// Maps a batch of images (B, C, H, W) to a batch of parameter vectors (B, P).
///
/// `train = true` runs BatchNorm on batch statistics and updates its running statistics;
/// `train = false` (evaluation, and any frozen network) uses the running statistics and changes
/// nothing.
pub trait Encoder {
    /// Encodes `images` (B, C, H, W) into (B, [`Encoder::output_dim`]).
    ///
    /// # Errors
    /// [`FacenetError::Input`] if the images have the wrong rank, channel count, size or dtype;
    /// a candle error from the forward pass.
    fn encode(&self, images: &Tensor, train: bool) -> Result<Tensor>;

    /// P, the length of each output vector.
    fn output_dim(&self) -> usize;

    /// C, the number of image channels the encoder accepts.
    fn input_channels(&self) -> usize;
}

/// Maps a batch of parameter vectors (B, P) to a batch of images (B, C, H, W): a learned renderer.
pub trait ImageDecoder {
    /// Decodes `params` (B, [`ImageDecoder::input_dim`]) into (B, C, H, W) with (C, H, W) =
    /// [`ImageDecoder::output_shape`]. `train` as in [`Encoder::encode`].
    ///
    /// # Errors
    /// [`FacenetError::Input`] if `params` has the wrong rank, length or dtype; a candle error from
    /// the forward pass.
    fn decode(&self, params: &Tensor, train: bool) -> Result<Tensor>;

    /// P, the length of each input vector.
    fn input_dim(&self) -> usize;

    /// (C, H, W) of each output image.
    fn output_shape(&self) -> ImageShape;
}

macro_rules! forward_encoder {
    ($($ptr:ty),*) => {$(
        impl<E: Encoder + ?Sized> Encoder for $ptr {
            fn encode(&self, images: &Tensor, train: bool) -> Result<Tensor> {
                (**self).encode(images, train)
            }
            fn output_dim(&self) -> usize {
                (**self).output_dim()
            }
            fn input_channels(&self) -> usize {
                (**self).input_channels()
            }
        }
    )*};
}
forward_encoder!(&E, &mut E, Box<E>, std::sync::Arc<E>);

macro_rules! forward_decoder {
    ($($ptr:ty),*) => {$(
        impl<D: ImageDecoder + ?Sized> ImageDecoder for $ptr {
            fn decode(&self, params: &Tensor, train: bool) -> Result<Tensor> {
                (**self).decode(params, train)
            }
            fn input_dim(&self) -> usize {
                (**self).input_dim()
            }
            fn output_shape(&self) -> ImageShape {
                (**self).output_shape()
            }
        }
    )*};
}
forward_decoder!(&D, &mut D, Box<D>, std::sync::Arc<D>);

/// Checks a batch of images against what a network accepts.
pub(crate) fn check_images(
    network: &'static str,
    images: &Tensor,
    channels: usize,
    min_size: usize,
    dtype: DType,
) -> Result<()> {
    let input = |what: &'static str, expected: String, actual: String| FacenetError::Input {
        network,
        what,
        expected,
        actual,
    };
    let &[batch, c, h, w] = images.dims() else {
        return Err(input(
            "shape",
            "(B, C, H, W)".into(),
            format!("{:?}", images.dims()),
        ));
    };
    if batch == 0 {
        return Err(input("batch size", "at least 1".into(), "0".into()));
    }
    if c != channels {
        return Err(input("channels", channels.to_string(), c.to_string()));
    }
    if h < min_size || w < min_size {
        return Err(input(
            "image size",
            format!("at least {min_size}×{min_size} pixels"),
            format!("{h}×{w}"),
        ));
    }
    if images.dtype() != dtype {
        return Err(input(
            "dtype",
            format!("{dtype:?} (the weights' dtype)"),
            format!("{:?}", images.dtype()),
        ));
    }
    Ok(())
}

/// Checks a batch of parameter vectors against what a decoder accepts.
pub(crate) fn check_vectors(
    network: &'static str,
    params: &Tensor,
    dim: usize,
    dtype: DType,
) -> Result<()> {
    let input = |what: &'static str, expected: String, actual: String| FacenetError::Input {
        network,
        what,
        expected,
        actual,
    };
    if !matches!(params.dims(), &[batch, p] if batch > 0 && p == dim) {
        return Err(input(
            "shape",
            format!("(B ≥ 1, {dim})"),
            format!("{:?}", params.dims()),
        ));
    }
    if params.dtype() != dtype {
        return Err(input(
            "dtype",
            format!("{dtype:?} (the weights' dtype)"),
            format!("{:?}", params.dtype()),
        ));
    }
    Ok(())
}
