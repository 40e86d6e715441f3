pub mod generate;
pub mod inspect;
pub mod simulate;
