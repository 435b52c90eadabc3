//! kreflex
