//! Exporters. They read the recorded families; the message path does not know they exist.

pub mod prometheus;

#[cfg(feature = "otlp")]
#[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
pub mod otlp;
