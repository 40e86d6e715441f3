//! Statismo / BFM 2019 HDF5 reader and writer (being written).
