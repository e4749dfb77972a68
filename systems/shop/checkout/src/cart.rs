//! The body of `POST /orders/create`, read by hand so that a bad one gets a 400 naming the
//! field that was wrong: `{"user_id": "u-1", "items": [{"product_id": 7, "quantity": 2}]}`.

use serde_json::Value;

/// Lines in one cart at most.
pub const MAX_ITEMS: usize = 100;
/// Units of one product in one line at most.
pub const MAX_QUANTITY: i64 = 1000;

/// A cart that can be priced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cart {
    pub user_id: String,
    pub items: Vec<Item>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item {
    pub product_id: i64,
    pub quantity: i64,
}

/// What was wrong with a body, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct FieldError {
    pub field: String,
    pub problem: String,
}

fn bad(field: impl Into<String>, problem: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        problem: problem.into(),
    }
}

/// Reads a cart from a request body.
pub fn parse_cart(body: &[u8]) -> Result<Cart, FieldError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| bad("body", format!("malformed JSON: {e}")))?;
    let Value::Object(object) = value else {
        return Err(bad("body", "must be a JSON object"));
    };
    let user_id = match object.get("user_id") {
        None => return Err(bad("user_id", "is required")),
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
        Some(Value::String(_)) => return Err(bad("user_id", "must not be empty")),
        Some(_) => return Err(bad("user_id", "must be a string")),
    };
    let items = match object.get("items") {
        None => return Err(bad("items", "is required")),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(bad("items", "must be an array")),
    };
    if items.is_empty() {
        return Err(bad("items", "the cart is empty"));
    }
    if items.len() > MAX_ITEMS {
        return Err(bad("items", format!("more than {MAX_ITEMS} lines")));
    }
    let mut parsed = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Value::Object(item) = item else {
            return Err(bad(format!("items[{i}]"), "must be an object"));
        };
        let product_id = match item.get("product_id") {
            None => return Err(bad(format!("items[{i}].product_id"), "is required")),
            Some(v) => match v.as_i64() {
                Some(id) if id > 0 => id,
                _ => {
                    return Err(bad(
                        format!("items[{i}].product_id"),
                        format!("{v} is not a product id"),
                    ));
                }
            },
        };
        let quantity = match item.get("quantity") {
            None => return Err(bad(format!("items[{i}].quantity"), "is required")),
            Some(v) => match v.as_i64() {
                Some(q) if q < 1 => {
                    return Err(bad(
                        format!("items[{i}].quantity"),
                        format!("{q} is not at least 1"),
                    ));
                }
                Some(q) if q > MAX_QUANTITY => {
                    return Err(bad(
                        format!("items[{i}].quantity"),
                        format!("{q} is over {MAX_QUANTITY}"),
                    ));
                }
                Some(q) => q,
                None => {
                    return Err(bad(
                        format!("items[{i}].quantity"),
                        format!("{v} is not a whole number"),
                    ));
                }
            },
        };
        parsed.push(Item {
            product_id,
            quantity,
        });
    }
    Ok(Cart {
        user_id,
        items: parsed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bad_body_names_its_field() {
        let table: &[(&str, &str)] = &[
            ("{not json", "body"),
            ("[1]", "body"),
            (
                r#"{"items": [{"product_id": 1, "quantity": 1}]}"#,
                "user_id",
            ),
            (r#"{"user_id": 7, "items": []}"#, "user_id"),
            (r#"{"user_id": "u"}"#, "items"),
            (r#"{"user_id": "u", "items": []}"#, "items"),
            (r#"{"user_id": "u", "items": [3]}"#, "items[0]"),
            (
                r#"{"user_id": "u", "items": [{"product_id": "x", "quantity": 1}]}"#,
                "items[0].product_id",
            ),
            (
                r#"{"user_id": "u", "items": [{"product_id": 1, "quantity": 1}, {"product_id": 2, "quantity": -3}]}"#,
                "items[1].quantity",
            ),
            (
                r#"{"user_id": "u", "items": [{"product_id": 1, "quantity": 1.5}]}"#,
                "items[0].quantity",
            ),
        ];
        for (body, field) in table {
            let err = parse_cart(body.as_bytes()).unwrap_err();
            assert_eq!(err.field, *field, "{body}: {err}");
        }
    }

    #[test]
    fn a_good_cart_is_read() {
        let cart =
            parse_cart(br#"{"user_id": " u-1 ", "items": [{"product_id": 7, "quantity": 2}]}"#)
                .unwrap();
        assert_eq!(
            cart,
            Cart {
                user_id: "u-1".into(),
                items: vec![Item {
                    product_id: 7,
                    quantity: 2
                }]
            }
        );
    }
}
