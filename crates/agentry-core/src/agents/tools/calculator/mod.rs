//! TEMPORARY STUB until the calculator lands (helper in progress).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Evaluation {
    pub expression: String,
    pub exact: String,
    pub decimal: Option<String>,
    pub approximate: bool,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CalcError {
    #[error("{0}")]
    Unsupported(String),
}

pub fn evaluate(input: &str) -> Result<Evaluation, CalcError> {
    Err(CalcError::Unsupported(input.to_owned()))
}

pub fn extract(_question: &str) -> Option<String> {
    None
}
