pub mod compare;
pub mod evaluate;
pub mod fit;
pub mod generate;
pub mod inspect;
pub mod reproduce;
pub mod simulate;
pub mod train;
