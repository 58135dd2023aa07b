//! Keelson keeps a Kubernetes cluster equal to what a Git repository says an OpenStack cloud should be.
#![forbid(unsafe_code)]

pub mod cli;
pub mod cluster;
pub mod object;
pub mod plan;
pub mod quantity;
pub mod reconciler;
pub mod render;
pub mod rollout;
pub mod sim;
pub mod source;
pub mod status;
pub mod topology;
pub mod yaml;
