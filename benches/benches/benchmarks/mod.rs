pub mod morphable;
