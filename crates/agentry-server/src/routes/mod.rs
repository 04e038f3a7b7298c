//! Platform routes outside `/v1`. One module per resource, each with `router()`.

pub mod health;
