//! Database statements normalized into classes: literals, numbers, placeholders and `IN (…)`
//! lists folded to `?`, comments dropped, keywords upper-cased and whitespace made uniform, so
//! that `SELECT * FROM t WHERE id = 7` and `select *  from t where id=$1` are one class.
//!
//! The tokenizer knows the dialects the reference systems and the SDKs send: PostgreSQL
//! (`$1`, `::` casts, `E'…'` and dollar-quoted strings, `"quoted"` identifiers), SQLite (`?`,
//! `?1`, `:name`, `@name`), MySQL (`` `quoted` `` identifiers, backslash escapes, `#` comments
//! at the start of a line). Double-quoted text is kept as an identifier, as standard SQL reads it.
//! Nothing here fails: text that is not SQL still yields a stable class.

/// One token of a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// A keyword (upper-cased) or an identifier (as written, quotes kept).
    Word(String),
    /// A literal, a number or a placeholder, folded.
    Value,
    /// Punctuation or an operator, as written.
    Punct(String),
}

/// The keywords upper-cased in a class (other words keep their case: identifiers may be
/// case-sensitive).
const KEYWORDS: &[&str] = &[
    "ALL",
    "ALTER",
    "AND",
    "AS",
    "ASC",
    "BEGIN",
    "BETWEEN",
    "BY",
    "CASE",
    "COMMIT",
    "CONFLICT",
    "CREATE",
    "CROSS",
    "DEFAULT",
    "DELETE",
    "DESC",
    "DISTINCT",
    "DO",
    "DROP",
    "ELSE",
    "END",
    "EXISTS",
    "FALSE",
    "FOR",
    "FROM",
    "FULL",
    "GROUP",
    "HAVING",
    "ILIKE",
    "IN",
    "INDEX",
    "INNER",
    "INSERT",
    "INTO",
    "IS",
    "JOIN",
    "KEY",
    "LEFT",
    "LIKE",
    "LIMIT",
    "LOCK",
    "NOT",
    "NOTHING",
    "NULL",
    "OFFSET",
    "ON",
    "OR",
    "ORDER",
    "OUTER",
    "OVER",
    "PARTITION",
    "PRIMARY",
    "RELEASE",
    "REPLACE",
    "RETURNING",
    "RIGHT",
    "ROLLBACK",
    "SAVEPOINT",
    "SELECT",
    "SET",
    "SHARE",
    "TABLE",
    "THEN",
    "TRANSACTION",
    "TRUE",
    "UNION",
    "UPDATE",
    "USING",
    "VALUES",
    "WHEN",
    "WHERE",
    "WITH",
];

fn keyword(word: &str) -> Option<&'static str> {
    KEYWORDS
        .iter()
        .find(|k| k.eq_ignore_ascii_case(word))
        .copied()
}

fn is_word_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// Splits a statement into tokens, dropping comments and whitespace.
fn tokenize(sql: &str) -> Vec<Token> {
    let chars: Vec<char> = sql.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let at_line_start = |i: usize| {
        chars[..i]
            .iter()
            .rev()
            .take_while(|c| **c != '\n')
            .all(|c| c.is_whitespace())
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c.is_whitespace() {
            i += 1;
        } else if c == '-' && next == Some('-') || c == '#' && at_line_start(i) {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            // Block comments, sqlcommenter's `/*traceparent='…'*/` among them.
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            i += 2;
        } else if c == '\''
            || (matches!(c, 'e' | 'E' | 'n' | 'N' | 'x' | 'X') && next == Some('\''))
        {
            i = skip_string(&chars, if c == '\'' { i } else { i + 1 });
            tokens.push(Token::Value);
        } else if c == '$'
            && let Some(end) = dollar_quoted(&chars, i)
        {
            i = end;
            tokens.push(Token::Value);
        } else if c == '?' || (c == '$' && next.is_some_and(|n| n.is_ascii_digit())) {
            // `?`, `?1` (SQLite) and `$1` (PostgreSQL) placeholders.
            i += 1;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            tokens.push(Token::Value);
        } else if c == '%' && next == Some('s') {
            i += 2;
            tokens.push(Token::Value);
        } else if (c == ':' || c == '@') && next.is_some_and(is_word_start) {
            // A named placeholder; `::` casts are handled below as punctuation.
            i += 1;
            while i < chars.len() && is_word_char(chars[i]) {
                i += 1;
            }
            tokens.push(Token::Value);
        } else if c.is_ascii_digit()
            || (c == '.' && next.is_some_and(|n| n.is_ascii_digit()))
            || (c == '-' && next.is_some_and(|n| n.is_ascii_digit()) && sign_allowed(&tokens))
        {
            i = skip_number(&chars, i);
            tokens.push(Token::Value);
        } else if c == '"' || c == '`' || c == '[' {
            let close = if c == '[' { ']' } else { c };
            let start = i;
            i += 1;
            while i < chars.len() && chars[i] != close {
                i += 1;
            }
            i = (i + 1).min(chars.len());
            tokens.push(Token::Word(chars[start..i].iter().collect()));
        } else if is_word_start(c) {
            let start = i;
            while i < chars.len() && is_word_char(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            tokens.push(Token::Word(match keyword(&word) {
                Some(k) => k.to_owned(),
                None => word,
            }));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let op = if ["::", "<=", ">=", "<>", "!=", "||", "->"].contains(&two.as_str()) {
                two
            } else {
                c.to_string()
            };
            i += op.chars().count();
            if op != ";" {
                tokens.push(Token::Punct(op));
            }
        }
    }
    tokens
}

/// Past a quoted string starting at `start` (`''` and backslash escapes inside).
fn skip_string(chars: &[char], start: usize) -> usize {
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '\'' if chars.get(i + 1) == Some(&'\'') => i += 2,
            '\'' => return i + 1,
            _ => i += 1,
        }
    }
    chars.len()
}

/// The end of a PostgreSQL dollar-quoted string (`$$…$$`, `$tag$…$tag$`) starting at `start`.
fn dollar_quoted(chars: &[char], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
        i += 1;
    }
    if chars.get(i) != Some(&'$') || chars.get(start + 1).is_some_and(|c| c.is_ascii_digit()) {
        return None;
    }
    let tag = &chars[start..=i];
    let mut j = i + 1;
    while j + tag.len() <= chars.len() {
        if &chars[j..j + tag.len()] == tag {
            return Some(j + tag.len());
        }
        j += 1;
    }
    Some(chars.len())
}

/// Whether a `-` before a digit is a sign (after an operator, a comma, `(` or a keyword).
fn sign_allowed(tokens: &[Token]) -> bool {
    match tokens.last() {
        None => true,
        Some(Token::Punct(p)) => p != ")",
        Some(Token::Word(w)) => keyword(w).is_some(),
        Some(Token::Value) => false,
    }
}

fn skip_number(chars: &[char], start: usize) -> usize {
    let mut i = start;
    if chars[i] == '-' {
        i += 1;
    }
    if chars[i] == '0' && matches!(chars.get(i + 1), Some('x' | 'X')) {
        i += 2;
        while i < chars.len() && chars[i].is_ascii_hexdigit() {
            i += 1;
        }
        return i;
    }
    while i < chars.len() {
        let c = chars[i];
        let exponent_sign = matches!(c, '+' | '-') && matches!(chars[i - 1], 'e' | 'E');
        if c.is_ascii_digit() || c == '.' || matches!(c, 'e' | 'E') || exponent_sign {
            i += 1;
        } else {
            break;
        }
    }
    i
}

/// Folds `IN (?, ?, …)` to `IN (?)` and repeated `VALUES` rows to one.
fn fold_lists(tokens: Vec<Token>) -> Vec<Token> {
    let punct = |t: &Token, p: &str| matches!(t, Token::Punct(x) if x == p);
    let mut out: Vec<Token> = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        let after_in = matches!(out.last(), Some(Token::Word(w)) if w == "IN");
        if after_in && punct(&tokens[i], "(") {
            // A list of values only (not a sub-select) becomes one `?`.
            let mut j = i + 1;
            let mut only_values = true;
            while j < tokens.len() && !punct(&tokens[j], ")") {
                only_values &= tokens[j] == Token::Value || punct(&tokens[j], ",");
                j += 1;
            }
            if only_values && j < tokens.len() {
                out.extend([
                    Token::Punct("(".into()),
                    Token::Value,
                    Token::Punct(")".into()),
                ]);
                i = j + 1;
                continue;
            }
        }
        let row_follows = punct(&tokens[i], ",")
            && tokens.get(i + 1).is_some_and(|t| punct(t, "("))
            && matches!(out.last(), Some(t) if punct(t, ")"));
        if row_follows && let Some(row) = last_values_row(&out) {
            let len = row.len();
            if tokens.get(i + 1..i + 1 + len) == Some(row.as_slice()) {
                i += 1 + len;
                continue;
            }
        }
        out.push(tokens[i].clone());
        i += 1;
    }
    out
}

/// The last `( … )` row of a `VALUES` list already emitted, when `out` ends in one.
fn last_values_row(out: &[Token]) -> Option<Vec<Token>> {
    let open = out
        .iter()
        .rposition(|t| matches!(t, Token::Punct(p) if p == "("))?;
    let before = open.checked_sub(1).map(|b| &out[b]);
    let is_row = match before {
        Some(Token::Word(w)) => w == "VALUES",
        Some(Token::Punct(p)) => p == ",",
        _ => false,
    };
    (is_row && out[open..].iter().all(|t| !matches!(t, Token::Word(_))))
        .then(|| out[open..].to_vec())
}

fn render(tokens: &[Token]) -> String {
    let mut out = String::new();
    let mut prev: Option<&Token> = None;
    for t in tokens {
        let text = match t {
            Token::Word(w) => w.as_str(),
            Token::Value => "?",
            Token::Punct(p) => p.as_str(),
        };
        let glue_before =
            matches!(t, Token::Punct(p) if [",", ")", ".", "::"].contains(&p.as_str()));
        let glue_after = match prev {
            Some(Token::Punct(p)) => ["(", ".", "::"].contains(&p.as_str()),
            // A function call (`count(*)`), not a keyword before a list (`IN (?)`).
            Some(Token::Word(w)) => {
                matches!(t, Token::Punct(p) if p == "(") && keyword(w).is_none()
            }
            _ => false,
        };
        if prev.is_some() && !glue_before && !glue_after {
            out.push(' ');
        }
        out.push_str(text);
        prev = Some(t);
    }
    out
}

/// The class of a statement: `select * from t where id = 7 -- x` is `SELECT * FROM t WHERE id = ?`.
pub fn normalize(statement: &str) -> String {
    render(&fold_lists(tokenize(statement)))
}

/// The tables a statement names after `FROM`, `JOIN`, `INTO`, `UPDATE` and `TABLE`, quotes
/// removed, each once, in order.
pub fn tables(statement: &str) -> Vec<String> {
    let tokens = tokenize(statement);
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let opens = matches!(&tokens[i], Token::Word(w)
            if ["FROM", "JOIN", "INTO", "UPDATE", "TABLE"].contains(&w.as_str()));
        i += 1;
        if !opens {
            continue;
        }
        let mut name = String::new();
        while let Some(Token::Word(w)) = tokens.get(i) {
            if keyword(w).is_some() {
                break;
            }
            name.push_str(w.trim_matches(|c| matches!(c, '"' | '`' | '[' | ']')));
            if matches!(tokens.get(i + 1), Some(Token::Punct(p)) if p == ".") {
                name.push('.');
                i += 2;
            } else {
                i += 1;
                break;
            }
        }
        if !name.is_empty() && !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_statements_fold_to_their_class() {
        let table: &[(&str, &str)] = &[
            // PostgreSQL (tokio-postgres, psycopg, the seeds' apps)
            (
                "SELECT id, title FROM placements WHERE video_id = $1",
                "SELECT id, title FROM placements WHERE video_id = ?",
            ),
            (
                "select id,title from placements where video_id=42",
                "SELECT id, title FROM placements WHERE video_id = ?",
            ),
            (
                "SELECT * FROM \"Orders\" o JOIN items i ON i.order_id = o.id WHERE o.id IN (1, 2, 3)",
                "SELECT * FROM \"Orders\" o JOIN items i ON i.order_id = o.id WHERE o.id IN (?)",
            ),
            (
                "SELECT * FROM t WHERE id IN ($1, $2, $3) AND created_at > now() - interval '1 day'",
                "SELECT * FROM t WHERE id IN (?) AND created_at > now() - interval ?",
            ),
            (
                "INSERT INTO orders (id, total) VALUES ($1, $2) RETURNING id",
                "INSERT INTO orders(id, total) VALUES (?, ?) RETURNING id",
            ),
            (
                "SELECT $1::text, E'it\\'s', $$dollar 'quoted'$$, $tag$x$tag$",
                "SELECT ?::text, ?, ?, ?",
            ),
            (
                "UPDATE stock SET qty = qty - 1, price = -2.5e3 WHERE sku = 'A''B' ;",
                "UPDATE stock SET qty = qty - ?, price = ? WHERE sku = ?",
            ),
            // sqlcommenter appends the trace context in a comment
            (
                "SELECT * FROM users WHERE id = 7 /*traceparent='00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',route='%2Fusers'*/",
                "SELECT * FROM users WHERE id = ?",
            ),
            (
                "-- load the user\nSELECT /* hint */ name\n\tFROM users   WHERE id = 0x1F",
                "SELECT name FROM users WHERE id = ?",
            ),
            // SQLite (rusqlite, the onboarding API)
            (
                "SELECT count(*) FROM notes WHERE owner = ?1 AND tag = :tag OR x = @x",
                "SELECT count(*) FROM notes WHERE owner = ? AND tag = ? OR x = ?",
            ),
            (
                "insert into notes(body) values (?), (?), (?)",
                "INSERT INTO notes(body) VALUES (?)",
            ),
            // MySQL
            (
                "SELECT `name` FROM `shop`.`products` WHERE category = 'it\\'s' LIMIT 10 OFFSET 20",
                "SELECT `name` FROM `shop`.`products` WHERE category = ? LIMIT ? OFFSET ?",
            ),
            (
                "# a MySQL comment\nDELETE FROM carts WHERE user_id = %s",
                "DELETE FROM carts WHERE user_id = ?",
            ),
            // A sub-select in IN stays
            (
                "select a from t where b in (select c from u where d = 1)",
                "SELECT a FROM t WHERE b IN (SELECT c FROM u WHERE d = ?)",
            ),
        ];
        for (input, want) in table {
            assert_eq!(normalize(input), *want, "{input}");
        }
    }

    #[test]
    fn one_class_whatever_the_literals_and_spacing() {
        let a = normalize("SELECT * FROM placements WHERE video_id = 1");
        let b = normalize("select *\n  from placements\nwhere video_id = $1 /* x */");
        let c = normalize("SELECT * FROM placements WHERE video_id IN (1,2)");
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn text_that_is_not_sql_yields_a_class_without_panicking() {
        for input in [
            "",
            "'unterminated",
            "/* unterminated",
            "$tag$ unterminated",
            "é ü 😀 ; ;",
            "\"",
            "-",
            "0x",
            "[",
        ] {
            let _ = normalize(input);
            let _ = tables(input);
        }
        assert_eq!(normalize("GET"), "GET");
    }

    #[test]
    fn tables_are_read_after_from_join_into_and_update() {
        assert_eq!(
            tables("SELECT * FROM \"Orders\" o JOIN shop.items i ON true"),
            ["Orders", "shop.items"]
        );
        assert_eq!(tables("insert into `notes` values (1)"), ["notes"]);
        assert_eq!(tables("UPDATE stock SET a = 1"), ["stock"]);
        assert!(tables("SELECT 1").is_empty());
    }
}
