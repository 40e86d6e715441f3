pub mod abs_fit;
pub mod backproject;
pub mod facenet;
pub mod morphable;
pub mod radar_sim;
