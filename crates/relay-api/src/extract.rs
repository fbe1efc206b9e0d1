//! Extractors whose rejections answer in the API's error shape instead of axum's plain text.

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body; malformed JSON is 400, a wrong content type 415, a body over the limit 413,
/// JSON of the wrong shape 422.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(rejection) => {
                let status = rejection.status();
                let code = match status {
                    StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
                    StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
                    StatusCode::UNPROCESSABLE_ENTITY => "invalid_body",
                    _ => "bad_request",
                };
                Err(ApiError::new(status, code, rejection.body_text()))
            }
        }
    }
}

/// Query parameters; a malformed query is 400.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| Self(v))
            .map_err(|r| ApiError::bad_request(r.body_text()))
    }
}

/// Path parameters; malformed ones are 400.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| Self(v))
            .map_err(|r| ApiError::bad_request(r.body_text()))
    }
}

/// The largest integer any API parameter accepts: 2^53 - 1, the largest integer every JSON
/// reader holds exactly and that an audit event's payload can record (RFC 8785 numbers are
/// doubles). Beyond it a call is refused with 400 `out_of_range`, never a 500.
pub const MAX_API_INTEGER: u64 = (1 << 53) - 1;

/// A numeric request parameter (query, path or JSON body) as sent, range-checked by
/// [`NumParam::within`], so an integer the handler cannot use (negative, too large, not an
/// integer) is a 400 `out_of_range` naming the parameter and its range instead of a
/// deserializer's message or a 500.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum NumParam {
    /// An integer (any size up to i128).
    Int(i128),
    /// Anything else that was sent as a number or numeric text (`1.5`, `1e30`, `12abc`).
    Other(String),
}

impl NumParam {
    /// The value when it is an integer in `min..=max`; else 400 `out_of_range`.
    pub(crate) fn within(&self, name: &str, min: u64, max: u64) -> Result<u64, ApiError> {
        match self {
            NumParam::Int(n) if *n >= i128::from(min) && *n <= i128::from(max) => {
                u64::try_from(*n).map_err(|_| out_of_range(name, min, max))
            }
            _ => Err(out_of_range(name, min, max)),
        }
    }

    /// [`within`](Self::within) for an optional parameter.
    pub(crate) fn opt_within(
        value: Option<&Self>,
        name: &str,
        min: u64,
        max: u64,
    ) -> Result<Option<u64>, ApiError> {
        value.map(|v| v.within(name, min, max)).transpose()
    }
}

/// 400 `out_of_range`: `name` must be an integer from `min` to `max`.
pub(crate) fn out_of_range(name: &str, min: u64, max: u64) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "out_of_range",
        format!("{name} must be an integer from {min} to {max}"),
    )
}

/// Refuses (400 `out_of_range`, naming `name`) any number in `value` that an audit event cannot
/// record exactly: integers beyond ±[`MAX_API_INTEGER`].
pub(crate) fn check_json_integers(value: &serde_json::Value, name: &str) -> Result<(), ApiError> {
    match value {
        serde_json::Value::Number(n) => {
            let ok = match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => u <= MAX_API_INTEGER,
                (None, Some(i)) => i.unsigned_abs() <= MAX_API_INTEGER,
                (None, None) => n.as_f64().is_some_and(f64::is_finite),
            };
            if ok {
                Ok(())
            } else {
                Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "out_of_range",
                    format!(
                        "{name}: integers must lie within -{MAX_API_INTEGER}..={MAX_API_INTEGER}"
                    ),
                ))
            }
        }
        serde_json::Value::Array(items) => {
            items.iter().try_for_each(|v| check_json_integers(v, name))
        }
        serde_json::Value::Object(map) => {
            map.values().try_for_each(|v| check_json_integers(v, name))
        }
        _ => Ok(()),
    }
}

impl<'de> serde::Deserialize<'de> for NumParam {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = NumParam;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<NumParam, E> {
                Ok(NumParam::Int(i128::from(v)))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<NumParam, E> {
                Ok(NumParam::Int(i128::from(v)))
            }
            fn visit_i128<E: serde::de::Error>(self, v: i128) -> Result<NumParam, E> {
                Ok(NumParam::Int(v))
            }
            fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<NumParam, E> {
                Ok(
                    i128::try_from(v)
                        .map_or_else(|_| NumParam::Other(v.to_string()), NumParam::Int),
                )
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<NumParam, E> {
                Ok(NumParam::Other(v.to_string()))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<NumParam, E> {
                let t = v.trim();
                let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
                if !digits.is_empty()
                    && digits.bytes().all(|b| b.is_ascii_digit())
                    && let Ok(n) = t.parse::<i128>()
                {
                    return Ok(NumParam::Int(n));
                }
                Ok(NumParam::Other(v.chars().take(40).collect()))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl serde::Serialize for NumParam {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Recorded in ACCESS payloads only after `within` admitted it; anything else as text.
        match self {
            NumParam::Int(n) => match i64::try_from(*n) {
                Ok(i) if i.unsigned_abs() <= MAX_API_INTEGER => s.serialize_i64(i),
                _ => s.serialize_str(&n.to_string()),
            },
            NumParam::Other(t) => s.serialize_str(t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[test]
    fn num_param_admits_only_integers_in_range() {
        let q = |s: &str| NumParam::deserialize(serde_json::Value::String(s.into())).unwrap();
        assert_eq!(q("5").within("x", 0, 10).unwrap(), 5);
        assert_eq!(
            q("9007199254740991")
                .within("x", 0, MAX_API_INTEGER)
                .unwrap(),
            MAX_API_INTEGER
        );
        for bad in [
            "9007199254740992",
            "9007199254740993",
            "-1",
            "1.5",
            "1e3",
            "abc",
            "99999999999999999999999999999999999999999",
        ] {
            let e = q(bad).within("x", 0, MAX_API_INTEGER).unwrap_err();
            assert_eq!(
                (e.status, e.code),
                (StatusCode::BAD_REQUEST, "out_of_range"),
                "{bad}"
            );
        }
        let j: NumParam = serde_json::from_str("18446744073709551616").unwrap();
        assert!(j.within("x", 0, MAX_API_INTEGER).is_err());
    }

    #[test]
    fn json_integers_beyond_2_pow_53_are_refused() {
        assert!(
            check_json_integers(&serde_json::json!({"a": [9007199254740991_u64]}), "v").is_ok()
        );
        let e = check_json_integers(&serde_json::json!({"a": [9007199254740992_u64]}), "v")
            .unwrap_err();
        assert_eq!(e.code, "out_of_range");
        assert!(check_json_integers(&serde_json::json!(-9007199254740992_i64), "v").is_err());
    }
}
