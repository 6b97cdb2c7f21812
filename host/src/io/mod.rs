//! Reading and writing files; every writer goes through a temporary name and a rename.

pub mod atomic;
pub mod counts;
pub mod crop;
pub mod hspy;
pub mod input;
pub mod loaded;
pub mod npy;
pub mod output;
pub mod ripple;
