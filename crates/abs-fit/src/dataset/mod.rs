//! The synthetic radar-face dataset: generation, storage and reading for training.

mod batches;
mod generate;
mod store;

pub use batches::{Batch, BatchConfig, InputKind, RangePolicy, write_input_image};
pub use generate::{DatasetConfig, GenerateOptions, generate};
pub use store::{
    DEPTH_FILE, Dataset, DatasetWriter, FORMAT_VERSION, ImageInfo, LEVEL_FILE, MANIFEST_FILE,
    Manifest, ModelIdentity, PARAMS_FILE, SampleArrays, merge_shards, shard_range,
};
