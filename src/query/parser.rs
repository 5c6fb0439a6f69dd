//! Parser for Shoal's textual query language, a re-creation of Realm's
//! NSPredicate-style predicate syntax.
//!
//! [`parse`] turns text such as
//! `age > 18 AND owner.name BEGINSWITH[c] 'j' SORT(age DESC) LIMIT(10)`
//! into a [`ParsedQuery`]: a filter [`Expr`] plus optional sort, distinct and
//! limit clauses. Only syntax is checked here; resolving property names and
//! checking types is the job of the query builder.
//!
//! The implementation is a small lexer followed by a recursive-descent
//! parser. Every failure is reported as a [`ParseError`] with a byte offset;
//! the parser never panics, and nesting depth is bounded so hostile input
//! cannot overflow the stack.

use std::fmt;
use std::str::CharIndices;

/// Deepest nesting of parentheses plus negations that is accepted. This bounds
/// parser recursion and also the depth of the resulting tree, whose drop is
/// recursive as well.
const MAX_NESTING_DEPTH: usize = 1000;

// ─────────────────────────────── Public AST ───────────────────────────────

/// A fully parsed query: the filter predicate plus its trailing clauses.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedQuery {
    /// The predicate every result must satisfy.
    pub filter: Expr,
    /// From a trailing `SORT(a ASC, b.c DESC)` clause; empty if none. Several SORT clauses append in order.
    pub sort: Vec<SortKey>,
    /// From a trailing `DISTINCT(a, b)` clause; empty if none.
    pub distinct: Vec<Vec<String>>,
    /// From a trailing `LIMIT(n)` clause. When several are given the smallest
    /// wins, which is what applying them one after another would yield.
    pub limit: Option<usize>,
}

/// One key of a `SORT(...)` clause.
#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    /// Key path of the property to sort by, e.g. `["owner", "name"]`.
    pub path: Vec<String>,
    /// `true` for `ASC`/`ASCENDING`, `false` for `DESC`/`DESCENDING`.
    pub ascending: bool,
}

/// A boolean predicate.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `TRUEPREDICATE`: matches everything.
    True,
    /// `FALSEPREDICATE`: matches nothing.
    False,
    /// Conjunction; a chain `a AND b AND c` becomes `And([a, b, c])`.
    /// Explicitly parenthesised groups are kept as written.
    And(Vec<Expr>),
    /// Disjunction, flattened like [`Expr::And`].
    Or(Vec<Expr>),
    /// Negation (`NOT x` or `!x`).
    Not(Box<Expr>),
    /// A single comparison such as `age >= 18`.
    Compare(Comparison),
}

/// `lhs op rhs`, with operands kept in the order they were written.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// Left operand.
    pub lhs: Operand,
    /// The comparison operator.
    pub op: CompareOp,
    /// Right operand.
    pub rhs: Operand,
    /// Set by a `[c]` suffix on the operator, e.g. `name ==[c] 'rex'`.
    pub case_insensitive: bool,
}

/// Comparison operators. Symbol aliases (`=`, `<>`, `=<`, `=>`) map onto
/// the canonical variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `==` or `=`
    Eq,
    /// `!=` or `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=` or `=<`
    Le,
    /// `>`
    Gt,
    /// `>=` or `=>`
    Ge,
    /// `BEGINSWITH`
    BeginsWith,
    /// `ENDSWITH`
    EndsWith,
    /// `CONTAINS`
    Contains,
    /// `LIKE` (wildcards `*` and `?`)
    Like,
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A key path: `name`, `owner.name`, `dogs.age`. `path` has at least one element.
    /// `collection_op` is set when the path ends with `.@count`, `.@size` (both -> Count), `.@min`, `.@max`, `.@sum`, `.@avg`
    /// possibly followed by a further property (e.g. `dogs.@max.age` => path ["dogs"], op Max, then `aggregate_property: Some("age")`).
    Property {
        /// Property names from the root object, in order.
        path: Vec<String>,
        /// Collection operator applied to the end of `path`, if any.
        collection_op: Option<CollectionOp>,
        /// Property aggregated by `@min`/`@max`/`@sum`/`@avg`, if any.
        aggregate_property: Option<String>,
    },
    /// A constant.
    Literal(Literal),
    /// `$0`, `$1`, ... argument placeholders.
    Argument(usize),
}

/// Collection operators usable at the end of a key path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollectionOp {
    /// `@count` or `@size`
    Count,
    /// `@min`
    Min,
    /// `@max`
    Max,
    /// `@sum`
    Sum,
    /// `@avg`
    Avg,
}

/// Constant values.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `null` or `nil` (any case).
    Null,
    /// `true` or `false` (any case).
    Bool(bool),
    /// Decimal or hexadecimal integer: `42`, `-7`, `0x1F`.
    Int(i64),
    /// Number with a fraction or exponent: `3.5`, `-0.25`, `1e10`, `2.5e-3`.
    Double(f64),
    /// `'single'` or `"double"` quoted text; escapes `\' \" \\ \/ \n \t \r
    /// \b \f \0 \uXXXX` (UTF-16 surrogate pairs are combined).
    String(String),
    /// `T<seconds>:<nanos>` (e.g. `T1700000000:500`) or UTC
    /// `YYYY-MM-DD@HH:MM:SS[:NANOS]` (`T` may replace `@`). As in Realm,
    /// a non-zero `nanos` has the same sign as `seconds`.
    Timestamp {
        /// Seconds since the Unix epoch.
        seconds: i64,
        /// Nanoseconds added to `seconds`.
        nanos: i32,
    },
    /// `B64"aGVsbG8="`: base64-encoded bytes.
    Binary(Vec<u8>),
}

/// A syntax error together with the byte offset where it was detected.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    /// Human-readable description of the problem.
    pub message: String,
    /// Byte offset into the input where the error was detected.
    pub offset: usize,
}

impl ParseError {
    fn new(message: impl Into<String>, offset: usize) -> Self {
        ParseError {
            message: message.into(),
            offset,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid query at offset {}: {}",
            self.offset, self.message
        )
    }
}

impl std::error::Error for ParseError {}

/// Parses a query string into its filter predicate and trailing clauses.
pub fn parse(input: &str) -> Result<ParsedQuery, ParseError> {
    let (tokens, lex_error) = tokenize(input);
    let result = Parser {
        input,
        tokens,
        pos: 0,
        depth: 0,
    }
    .parse_query();
    // Report whichever problem comes first in the input: a syntax error
    // before the bad token wins; otherwise the lexer's message is more precise.
    match (result, lex_error) {
        (Err(error), Some(lex)) if error.offset < lex.token_start => Err(error),
        (_, Some(lex)) => Err(lex.error),
        (result, None) => result,
    }
}

// ──────────────────────────────── Lexer ────────────────────────────────

#[derive(Debug, Clone, PartialEq)]
enum TokenKind {
    Ident(String),
    /// `@count` and friends, stored without the `@`.
    CollectionOperator(String),
    Literal(Literal),
    Argument(usize),
    Comparison(CompareOp),
    AndSymbol,
    OrSymbol,
    Bang,
    Dot,
    Comma,
    LeftParen,
    RightParen,
    LeftBracket,
    RightBracket,
    End,
}

#[derive(Debug, Clone)]
struct Token {
    kind: TokenKind,
    start: usize,
    end: usize,
}

/// A lexing failure and where the offending token began.
struct LexError {
    error: ParseError,
    token_start: usize,
}

/// Splits the input into tokens, always ending with `TokenKind::End`. On a
/// lexing error the tokens stop (with `End`) where the bad token begins, so
/// the parser can still report any earlier syntax error first.
fn tokenize(input: &str) -> (Vec<Token>, Option<LexError>) {
    let mut lexer = Lexer {
        input,
        bytes: input.as_bytes(),
        pos: 0,
    };
    let mut tokens = Vec::new();
    let end_token = |start| Token {
        kind: TokenKind::End,
        start,
        end: start,
    };
    loop {
        lexer.skip_whitespace();
        let start = lexer.pos;
        if start >= input.len() {
            tokens.push(end_token(start));
            return (tokens, None);
        }
        match lexer.next_kind() {
            Ok(kind) => tokens.push(Token {
                kind,
                start,
                end: lexer.pos,
            }),
            Err(error) => {
                tokens.push(end_token(start));
                let token_start = start;
                return (tokens, Some(LexError { error, token_start }));
            }
        }
    }
}

/// Cursor over the input. `pos` always sits on a char boundary because it only
/// ever moves over ASCII bytes or over whole string literals.
struct Lexer<'a> {
    input: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

fn is_ident_start(byte: u8) -> bool {
    byte.is_ascii_alphabetic() || byte == b'_'
}

fn is_ident_continue(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

impl<'a> Lexer<'a> {
    fn byte_at(&self, index: usize) -> Option<u8> {
        self.bytes.get(index).copied()
    }

    fn skip_whitespace(&mut self) {
        while self
            .byte_at(self.pos)
            .is_some_and(|b| b.is_ascii_whitespace() || b == 0x0b)
        {
            self.pos += 1;
        }
    }

    fn count_digits(&self, from: usize) -> usize {
        self.bytes.get(from..).map_or(0, |rest| {
            rest.iter().take_while(|b| b.is_ascii_digit()).count()
        })
    }

    /// Length of `-?[0-9]+` starting at `from`, or 0 if there is none.
    fn signed_digits_len(&self, from: usize) -> usize {
        let sign = usize::from(self.byte_at(from) == Some(b'-'));
        match self.count_digits(from + sign) {
            0 => 0,
            digits => sign + digits,
        }
    }

    fn next_kind(&mut self) -> Result<TokenKind, ParseError> {
        let byte = self.bytes[self.pos];
        match byte {
            b'(' => Ok(self.single(TokenKind::LeftParen)),
            b')' => Ok(self.single(TokenKind::RightParen)),
            b'[' => Ok(self.single(TokenKind::LeftBracket)),
            b']' => Ok(self.single(TokenKind::RightBracket)),
            b',' => Ok(self.single(TokenKind::Comma)),
            b'.' => Ok(self.single(TokenKind::Dot)),
            b'=' | b'!' | b'<' | b'>' | b'&' | b'|' => self.lex_symbol(),
            b'\'' | b'"' => self
                .lex_string()
                .map(|text| TokenKind::Literal(Literal::String(text))),
            b'$' => self.lex_argument(),
            b'@' => self.lex_collection_operator(),
            b'-' | b'0'..=b'9' => self.lex_number_or_date(),
            b'T' if self.looks_like_epoch_timestamp() => self.lex_epoch_timestamp(),
            b'B' if self.looks_like_binary() => self.lex_binary(),
            b if is_ident_start(b) => Ok(TokenKind::Ident(self.take_ident().to_string())),
            _ => Err(self.unexpected_character()),
        }
    }

    fn single(&mut self, kind: TokenKind) -> TokenKind {
        self.pos += 1;
        kind
    }

    fn unexpected_character(&self) -> ParseError {
        let found = self
            .input
            .get(self.pos..)
            .and_then(|rest| rest.chars().next())
            .unwrap_or('?');
        ParseError::new(format!("unexpected character '{found}'"), self.pos)
    }

    fn take_ident(&mut self) -> &'a str {
        let start = self.pos;
        while self.byte_at(self.pos).is_some_and(is_ident_continue) {
            self.pos += 1;
        }
        &self.input[start..self.pos]
    }

    /// Numbers, arguments and timestamps must not run straight into a name
    /// (`12abc`) or another dot (`1.5.3`).
    fn reject_glued_suffix(&self, what: &str) -> Result<(), ParseError> {
        match self.byte_at(self.pos) {
            Some(b) if is_ident_continue(b) || b == b'.' => Err(ParseError::new(
                format!("unexpected '{}' after {what}", char::from(b)),
                self.pos,
            )),
            _ => Ok(()),
        }
    }

    fn lex_symbol(&mut self) -> Result<TokenKind, ParseError> {
        let first = self.bytes[self.pos];
        let second = self.byte_at(self.pos + 1).unwrap_or(0);
        let (len, kind) = match [first, second] {
            [b'=', b'='] => (2, TokenKind::Comparison(CompareOp::Eq)),
            [b'=', b'<'] | [b'<', b'='] => (2, TokenKind::Comparison(CompareOp::Le)),
            [b'=', b'>'] | [b'>', b'='] => (2, TokenKind::Comparison(CompareOp::Ge)),
            [b'!', b'='] | [b'<', b'>'] => (2, TokenKind::Comparison(CompareOp::Ne)),
            [b'&', b'&'] => (2, TokenKind::AndSymbol),
            [b'|', b'|'] => (2, TokenKind::OrSymbol),
            [b'=', _] => (1, TokenKind::Comparison(CompareOp::Eq)),
            [b'<', _] => (1, TokenKind::Comparison(CompareOp::Lt)),
            [b'>', _] => (1, TokenKind::Comparison(CompareOp::Gt)),
            [b'!', _] => (1, TokenKind::Bang),
            [b'&', _] => {
                return Err(ParseError::new(
                    "unexpected '&'; did you mean '&&'?",
                    self.pos,
                ))
            }
            [b'|', _] => {
                return Err(ParseError::new(
                    "unexpected '|'; did you mean '||'?",
                    self.pos,
                ))
            }
            _ => return Err(self.unexpected_character()),
        };
        self.pos += len;
        Ok(kind)
    }

    fn lex_string(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        let quote = char::from(self.bytes[start]);
        let body_start = start + 1;
        let mut chars = self.input[body_start..].char_indices();
        let mut value = String::new();
        while let Some((index, c)) = chars.next() {
            if c == quote {
                self.pos = body_start + index + 1;
                return Ok(value);
            }
            if c == '\\' {
                value.push(read_escape(&mut chars, body_start + index)?);
            } else {
                value.push(c);
            }
        }
        Err(ParseError::new(
            format!("unterminated string literal: missing closing {quote}"),
            start,
        ))
    }

    fn lex_argument(&mut self) -> Result<TokenKind, ParseError> {
        let start = self.pos;
        let digits = self.count_digits(start + 1);
        if digits == 0 {
            return Err(ParseError::new(
                "expected an argument index after '$', e.g. $0",
                start,
            ));
        }
        self.pos = start + 1 + digits;
        let index = self.input[start + 1..self.pos]
            .parse::<usize>()
            .map_err(|_| ParseError::new("argument index is too large", start))?;
        self.reject_glued_suffix("argument")?;
        Ok(TokenKind::Argument(index))
    }

    fn lex_collection_operator(&mut self) -> Result<TokenKind, ParseError> {
        let start = self.pos;
        self.pos += 1;
        let name = self.take_ident();
        if name.is_empty() {
            return Err(ParseError::new(
                "expected a collection operator name after '@', e.g. @count",
                start,
            ));
        }
        Ok(TokenKind::CollectionOperator(name.to_string()))
    }

    fn lex_number_or_date(&mut self) -> Result<TokenKind, ParseError> {
        // Digits followed by '-' can only be a date: there is no subtraction.
        let digits = self.count_digits(self.pos);
        if digits > 0 && self.byte_at(self.pos + digits) == Some(b'-') {
            return self.lex_iso_timestamp();
        }
        self.lex_number()
    }

    fn lex_number(&mut self) -> Result<TokenKind, ParseError> {
        let start = self.pos;
        let negative = self.bytes[start] == b'-';
        let digits_start = start + usize::from(negative);
        if self.count_digits(digits_start) == 0 {
            return Err(ParseError::new("expected a digit after '-'", start));
        }
        let is_hex = self.byte_at(digits_start) == Some(b'0')
            && matches!(self.byte_at(digits_start + 1), Some(b'x' | b'X'));
        let kind = if is_hex {
            self.lex_hex(start, digits_start + 2, negative)?
        } else {
            self.lex_decimal(start, digits_start)?
        };
        self.reject_glued_suffix("number")?;
        Ok(kind)
    }

    fn lex_hex(
        &mut self,
        start: usize,
        hex_start: usize,
        negative: bool,
    ) -> Result<TokenKind, ParseError> {
        let count = self.bytes.get(hex_start..).map_or(0, |rest| {
            rest.iter().take_while(|b| b.is_ascii_hexdigit()).count()
        });
        if count == 0 {
            return Err(ParseError::new(
                "expected hexadecimal digits after '0x'",
                hex_start,
            ));
        }
        self.pos = hex_start + count;
        let out_of_range = || ParseError::new("integer literal is out of range", start);
        let magnitude = u64::from_str_radix(&self.input[hex_start..self.pos], 16)
            .map_err(|_| out_of_range())?;
        let value = if negative {
            -i128::from(magnitude)
        } else {
            i128::from(magnitude)
        };
        i64::try_from(value)
            .map(|v| TokenKind::Literal(Literal::Int(v)))
            .map_err(|_| out_of_range())
    }

    fn lex_decimal(&mut self, start: usize, digits_start: usize) -> Result<TokenKind, ParseError> {
        let mut end = digits_start + self.count_digits(digits_start);
        let mut is_double = false;
        if self.byte_at(end) == Some(b'.') {
            let fraction = self.count_digits(end + 1);
            if fraction == 0 {
                return Err(ParseError::new(
                    "expected digits after the decimal point",
                    end + 1,
                ));
            }
            end += 1 + fraction;
            is_double = true;
        }
        if matches!(self.byte_at(end), Some(b'e' | b'E')) {
            let mut exponent_start = end + 1;
            if matches!(self.byte_at(exponent_start), Some(b'+' | b'-')) {
                exponent_start += 1;
            }
            let exponent_digits = self.count_digits(exponent_start);
            if exponent_digits == 0 {
                return Err(ParseError::new(
                    "expected digits in the exponent",
                    exponent_start,
                ));
            }
            end = exponent_start + exponent_digits;
            is_double = true;
        }
        self.pos = end;
        let text = &self.input[start..end];
        if is_double {
            match text.parse::<f64>() {
                Ok(value) if value.is_finite() => Ok(TokenKind::Literal(Literal::Double(value))),
                _ => Err(ParseError::new(
                    "floating-point literal is out of range",
                    start,
                )),
            }
        } else {
            text.parse::<i64>()
                .map(|value| TokenKind::Literal(Literal::Int(value)))
                .map_err(|_| ParseError::new("integer literal is out of range", start))
        }
    }

    /// `T<seconds>:<nanos>`, each part optionally negative.
    fn looks_like_epoch_timestamp(&self) -> bool {
        let seconds_len = self.signed_digits_len(self.pos + 1);
        let colon = self.pos + 1 + seconds_len;
        seconds_len > 0
            && self.byte_at(colon) == Some(b':')
            && self.signed_digits_len(colon + 1) > 0
    }

    fn lex_epoch_timestamp(&mut self) -> Result<TokenKind, ParseError> {
        let start = self.pos;
        let seconds_start = start + 1;
        let seconds_end = seconds_start + self.signed_digits_len(seconds_start);
        let nanos_start = seconds_end + 1;
        self.pos = nanos_start + self.signed_digits_len(nanos_start);
        let seconds = self.input[seconds_start..seconds_end]
            .parse::<i64>()
            .map_err(|_| ParseError::new("timestamp seconds are out of range", seconds_start))?;
        let nanos = self.input[nanos_start..self.pos]
            .parse::<i32>()
            .ok()
            .filter(|n| n.unsigned_abs() < 1_000_000_000)
            .ok_or_else(|| {
                ParseError::new(
                    "timestamp nanoseconds must be between -999999999 and 999999999",
                    nanos_start,
                )
            })?;
        if (seconds > 0 && nanos < 0) || (seconds < 0 && nanos > 0) {
            return Err(ParseError::new(
                "timestamp nanoseconds must have the same sign as the seconds",
                nanos_start,
            ));
        }
        self.reject_glued_suffix("timestamp")?;
        Ok(TokenKind::Literal(Literal::Timestamp { seconds, nanos }))
    }

    fn lex_iso_timestamp(&mut self) -> Result<TokenKind, ParseError> {
        let start = self.pos;
        let fields = self.scan_date_time().ok_or_else(|| {
            ParseError::new(
                "invalid timestamp literal: expected YYYY-MM-DD@HH:MM:SS[:NANOS]",
                start,
            )
        })?;
        let (seconds, nanos) = fields
            .to_epoch()
            .map_err(|message| ParseError::new(message, start))?;
        self.reject_glued_suffix("timestamp")?;
        Ok(TokenKind::Literal(Literal::Timestamp { seconds, nanos }))
    }

    fn scan_date_time(&mut self) -> Option<DateTimeFields> {
        let year = self.scan_field(9)?;
        self.scan_byte(b'-')?;
        let month = self.scan_field(2)?;
        self.scan_byte(b'-')?;
        let day = self.scan_field(2)?;
        self.scan_byte(b'@').or_else(|| self.scan_byte(b'T'))?;
        let hour = self.scan_field(2)?;
        self.scan_byte(b':')?;
        let minute = self.scan_field(2)?;
        self.scan_byte(b':')?;
        let second = self.scan_field(2)?;
        let nanos = match self.scan_byte(b':') {
            Some(()) => self.scan_field(9)?,
            None => 0,
        };
        Some(DateTimeFields {
            year,
            month,
            day,
            hour,
            minute,
            second,
            nanos,
        })
    }

    /// Reads 1..=`max_digits` decimal digits.
    fn scan_field(&mut self, max_digits: usize) -> Option<i64> {
        let digits = self.count_digits(self.pos);
        if digits == 0 || digits > max_digits {
            return None;
        }
        let value = self.input[self.pos..self.pos + digits].parse().ok()?;
        self.pos += digits;
        Some(value)
    }

    fn scan_byte(&mut self, expected: u8) -> Option<()> {
        if self.byte_at(self.pos) == Some(expected) {
            self.pos += 1;
            Some(())
        } else {
            None
        }
    }

    fn looks_like_binary(&self) -> bool {
        self.bytes[self.pos..].starts_with(b"B64")
            && matches!(self.byte_at(self.pos + 3), Some(b'"' | b'\''))
    }

    fn lex_binary(&mut self) -> Result<TokenKind, ParseError> {
        let start = self.pos;
        let quote = self.bytes[start + 3];
        let content_start = start + 4;
        let close = self.bytes[content_start..]
            .iter()
            .position(|&b| b == quote)
            .map(|i| content_start + i)
            .ok_or_else(|| ParseError::new("unterminated base64 literal", start))?;
        let data = decode_base64(&self.input[content_start..close])
            .map_err(|(index, message)| ParseError::new(message, content_start + index))?;
        self.pos = close + 1;
        Ok(TokenKind::Literal(Literal::Binary(data)))
    }
}

/// Decodes the character after a backslash inside a string literal.
fn read_escape(chars: &mut CharIndices<'_>, escape_offset: usize) -> Result<char, ParseError> {
    let Some((_, escaped)) = chars.next() else {
        return Err(ParseError::new(
            "unterminated string literal: input ends inside an escape sequence",
            escape_offset,
        ));
    };
    match escaped {
        '\'' | '"' | '\\' | '/' => Ok(escaped),
        'n' => Ok('\n'),
        't' => Ok('\t'),
        'r' => Ok('\r'),
        'b' => Ok('\u{8}'),
        'f' => Ok('\u{c}'),
        '0' => Ok('\0'),
        'u' => read_unicode_escape(chars, escape_offset),
        other => Err(ParseError::new(
            format!("invalid escape sequence '\\{other}'"),
            escape_offset,
        )),
    }
}

/// Decodes `XXXX` after `\u`, combining a UTF-16 surrogate pair if present.
fn read_unicode_escape(
    chars: &mut CharIndices<'_>,
    escape_offset: usize,
) -> Result<char, ParseError> {
    let invalid = || ParseError::new("invalid unicode escape: unpaired surrogate", escape_offset);
    let high = read_hex4(chars, escape_offset)?;
    if (0xDC00..=0xDFFF).contains(&high) {
        return Err(invalid());
    }
    if !(0xD800..=0xDBFF).contains(&high) {
        return char::from_u32(high).ok_or_else(invalid);
    }
    let backslash = chars.next().map(|(_, c)| c);
    let u = chars.next().map(|(_, c)| c);
    if backslash != Some('\\') || u != Some('u') {
        return Err(invalid());
    }
    let low = read_hex4(chars, escape_offset)?;
    if !(0xDC00..=0xDFFF).contains(&low) {
        return Err(invalid());
    }
    char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)).ok_or_else(invalid)
}

fn read_hex4(chars: &mut CharIndices<'_>, escape_offset: usize) -> Result<u32, ParseError> {
    let mut value = 0;
    for _ in 0..4 {
        let digit = chars
            .next()
            .and_then(|(_, c)| c.to_digit(16))
            .ok_or_else(|| {
                ParseError::new(
                    "expected four hexadecimal digits after '\\u'",
                    escape_offset,
                )
            })?;
        value = value * 16 + digit;
    }
    Ok(value)
}

/// Standard-alphabet base64 with optional `=` padding. Errors carry the byte
/// index of the problem within `text`.
fn decode_base64(text: &str) -> Result<Vec<u8>, (usize, &'static str)> {
    let bytes = text.as_bytes();
    let data_len = bytes.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
    let padding = bytes.len() - data_len;
    if padding > 2 || (padding > 0 && bytes.len() % 4 != 0) {
        return Err((data_len, "invalid base64 padding"));
    }
    if data_len % 4 == 1 {
        return Err((data_len, "truncated base64 data"));
    }
    let mut output = Vec::with_capacity(data_len * 3 / 4);
    let mut accumulator: u32 = 0;
    let mut bits = 0;
    for (index, &byte) in bytes[..data_len].iter().enumerate() {
        let sextet = base64_value(byte).ok_or((index, "invalid base64 character"))?;
        accumulator = (accumulator << 6) | sextet;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            output.push((accumulator >> bits) as u8);
            accumulator &= (1 << bits) - 1;
        }
    }
    Ok(output)
}

fn base64_value(byte: u8) -> Option<u32> {
    let value = match byte {
        b'A'..=b'Z' => byte - b'A',
        b'a'..=b'z' => byte - b'a' + 26,
        b'0'..=b'9' => byte - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(value))
}

/// The pieces of `YYYY-MM-DD@HH:MM:SS[:NANOS]`, not yet range-checked.
struct DateTimeFields {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    nanos: i64,
}

impl DateTimeFields {
    /// Validates the fields and converts them to (seconds, nanos) since the
    /// Unix epoch, interpreting them as UTC.
    fn to_epoch(&self) -> Result<(i64, i32), String> {
        if !(1..=12).contains(&self.month) {
            return Err(format!(
                "invalid timestamp: month {} is out of range",
                self.month
            ));
        }
        if !(1..=days_in_month(self.year, self.month)).contains(&self.day) {
            return Err(format!(
                "invalid timestamp: day {} is out of range",
                self.day
            ));
        }
        if self.hour > 23 || self.minute > 59 || self.second > 59 {
            return Err("invalid timestamp: time of day is out of range".to_string());
        }
        let days = days_from_civil(self.year, self.month, self.day);
        let seconds = days * 86_400 + self.hour * 3_600 + self.minute * 60 + self.second;
        // At most 9 digits were scanned, so the nanoseconds always fit.
        let nanos = i32::try_from(self.nanos).map_err(|_| "invalid timestamp nanoseconds")?;
        Ok((seconds, nanos))
    }
}

fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 in the proleptic Gregorian calendar (Howard
/// Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let shifted_month = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

// ──────────────────────────────── Parser ────────────────────────────────

/// Words that cannot start an operand, so `name == AND` reports a missing
/// value instead of silently comparing against a property called `AND`.
const RESERVED_WORDS: [&str; 9] = [
    "AND",
    "OR",
    "NOT",
    "BEGINSWITH",
    "ENDSWITH",
    "CONTAINS",
    "LIKE",
    "TRUEPREDICATE",
    "FALSEPREDICATE",
];

#[derive(Clone, Copy)]
enum Clause {
    Sort,
    Distinct,
    Limit,
}

fn is_keyword(kind: &TokenKind, keyword: &str) -> bool {
    matches!(kind, TokenKind::Ident(word) if word.eq_ignore_ascii_case(keyword))
}

fn clause_keyword(word: &str) -> Option<Clause> {
    match word.to_ascii_uppercase().as_str() {
        "SORT" => Some(Clause::Sort),
        "DISTINCT" => Some(Clause::Distinct),
        "LIMIT" => Some(Clause::Limit),
        _ => None,
    }
}

fn keyword_literal(word: &str) -> Option<Literal> {
    match word.to_ascii_uppercase().as_str() {
        "NULL" | "NIL" => Some(Literal::Null),
        "TRUE" => Some(Literal::Bool(true)),
        "FALSE" => Some(Literal::Bool(false)),
        _ => None,
    }
}

fn keyword_operator(word: &str) -> Option<CompareOp> {
    match word.to_ascii_uppercase().as_str() {
        "BEGINSWITH" => Some(CompareOp::BeginsWith),
        "ENDSWITH" => Some(CompareOp::EndsWith),
        "CONTAINS" => Some(CompareOp::Contains),
        "LIKE" => Some(CompareOp::Like),
        _ => None,
    }
}

fn collection_op_from_name(name: &str) -> Option<CollectionOp> {
    match name.to_ascii_lowercase().as_str() {
        "count" | "size" => Some(CollectionOp::Count),
        "min" => Some(CollectionOp::Min),
        "max" => Some(CollectionOp::Max),
        "sum" => Some(CollectionOp::Sum),
        "avg" => Some(CollectionOp::Avg),
        _ => None,
    }
}

/// `ASC`/`ASCENDING` → true, `DESC`/`DESCENDING` → false.
fn sort_direction(kind: &TokenKind) -> Option<bool> {
    let TokenKind::Ident(word) = kind else {
        return None;
    };
    match word.to_ascii_uppercase().as_str() {
        "ASC" | "ASCENDING" => Some(true),
        "DESC" | "DESCENDING" => Some(false),
        _ => None,
    }
}

/// A single term stays as is; several are combined with `combine`.
fn collapse(mut terms: Vec<Expr>, combine: fn(Vec<Expr>) -> Expr) -> Expr {
    if terms.len() == 1 {
        if let Some(only) = terms.pop() {
            return only;
        }
    }
    combine(terms)
}

/// Wraps `expr` in `times` negations.
fn negate(mut expr: Expr, times: usize) -> Expr {
    for _ in 0..times {
        expr = Expr::Not(Box::new(expr));
    }
    expr
}

/// A parenthesised group still being parsed (or the implicit top level).
struct Group {
    /// Offset of the `(`, for the "unclosed" error message.
    open_offset: usize,
    /// Negations written directly before the `(`; applied once it closes.
    negations: usize,
    /// Completed OR-terms.
    or_terms: Vec<Expr>,
    /// AND-terms of the OR-term currently being built.
    and_terms: Vec<Expr>,
}

impl Group {
    fn new(open_offset: usize, negations: usize) -> Self {
        Group {
            open_offset,
            negations,
            or_terms: Vec::new(),
            and_terms: Vec::new(),
        }
    }

    /// Ends the current AND chain, turning it into one OR-term.
    fn close_and_chain(&mut self) {
        let chain = std::mem::take(&mut self.and_terms);
        self.or_terms.push(collapse(chain, Expr::And));
    }

    /// Combines everything parsed in the group into one expression.
    fn finish(mut self) -> Expr {
        self.close_and_chain();
        collapse(self.or_terms, Expr::Or)
    }
}

struct Parser<'a> {
    input: &'a str,
    /// Never empty: the last token is always `End`, and `pos` never moves past it.
    tokens: Vec<Token>,
    pos: usize,
    /// Current nesting of parentheses and negations.
    depth: usize,
}

impl<'a> Parser<'a> {
    // ── token helpers ──

    fn peek(&self) -> &Token {
        &self.tokens[self.pos]
    }

    fn peek_next(&self) -> &Token {
        &self.tokens[(self.pos + 1).min(self.tokens.len() - 1)]
    }

    fn at_end(&self) -> bool {
        matches!(self.peek().kind, TokenKind::End)
    }

    fn advance(&mut self) -> Token {
        let token = self.peek().clone();
        if !self.at_end() {
            self.pos += 1;
        }
        token
    }

    fn eat(&mut self, kind: &TokenKind) -> bool {
        let matched = self.peek().kind == *kind;
        if matched {
            self.advance();
        }
        matched
    }

    /// Consumes `symbol` (e.g. `&&`) or its keyword spelling (e.g. `AND`).
    fn eat_logical(&mut self, symbol: &TokenKind, keyword: &str) -> bool {
        let matched = self.peek().kind == *symbol || is_keyword(&self.peek().kind, keyword);
        if matched {
            self.advance();
        }
        matched
    }

    fn expect(&mut self, kind: &TokenKind, expected: &str) -> Result<Token, ParseError> {
        if self.peek().kind == *kind {
            Ok(self.advance())
        } else {
            Err(self.unexpected(expected))
        }
    }

    fn expect_identifier(&mut self, expected: &str) -> Result<String, ParseError> {
        match &self.peek().kind {
            TokenKind::Ident(name) => {
                let name = name.clone();
                self.advance();
                Ok(name)
            }
            _ => Err(self.unexpected(expected)),
        }
    }

    // ── error helpers ──

    /// Quotes a token's source text (shortened) for error messages.
    fn describe(&self, token: &Token) -> String {
        if matches!(token.kind, TokenKind::End) {
            return "end of input".to_string();
        }
        let text = self.input.get(token.start..token.end).unwrap_or("");
        let snippet: String = text.chars().take(32).collect();
        let ellipsis = if snippet.len() < text.len() {
            "..."
        } else {
            ""
        };
        format!("'{snippet}{ellipsis}'")
    }

    /// " after 'x'" naming the previous token, or "" at the start of input.
    fn after_previous(&self) -> String {
        match self.pos.checked_sub(1) {
            Some(index) => format!(" after {}", self.describe(&self.tokens[index])),
            None => String::new(),
        }
    }

    fn unexpected(&self, expected: &str) -> ParseError {
        let token = self.peek();
        ParseError::new(
            format!("expected {expected}, found {}", self.describe(token)),
            token.start,
        )
    }

    fn error_here(&self, message: impl Into<String>) -> ParseError {
        ParseError::new(message, self.peek().start)
    }

    fn enter_nesting(&mut self, offset: usize) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_NESTING_DEPTH {
            return Err(ParseError::new(
                format!(
                    "query is nested too deeply (more than {MAX_NESTING_DEPTH} levels of parentheses or NOT)"
                ),
                offset,
            ));
        }
        Ok(())
    }

    // ── query and trailing clauses ──

    fn parse_query(&mut self) -> Result<ParsedQuery, ParseError> {
        if self.at_end() {
            return Err(
                self.error_here("empty query: expected a predicate such as 'TRUEPREDICATE'")
            );
        }
        let filter = self.parse_filter()?;
        let mut query = ParsedQuery {
            filter,
            sort: Vec::new(),
            distinct: Vec::new(),
            limit: None,
        };
        while !self.at_end() {
            self.parse_trailing_clause(&mut query)?;
        }
        Ok(query)
    }

    fn parse_trailing_clause(&mut self, query: &mut ParsedQuery) -> Result<(), ParseError> {
        let clause = match &self.peek().kind {
            TokenKind::Ident(word) => clause_keyword(word),
            TokenKind::RightParen => return Err(self.error_here("unmatched ')'")),
            _ => None,
        };
        match clause {
            Some(Clause::Sort) => {
                let keys = self.parse_clause_list("SORT", Self::parse_sort_key)?;
                query.sort.extend(keys);
            }
            Some(Clause::Distinct) => {
                let paths = self.parse_clause_list("DISTINCT", Self::parse_plain_path)?;
                query.distinct.extend(paths);
            }
            Some(Clause::Limit) => {
                let limit = self.parse_limit()?;
                query.limit = Some(query.limit.map_or(limit, |previous| previous.min(limit)));
            }
            None => {
                return Err(self.unexpected(
                    "AND, OR, SORT(...), DISTINCT(...), LIMIT(...) or the end of the query",
                ))
            }
        }
        Ok(())
    }

    /// `KEYWORD ( item (, item)* )`, with the keyword still unconsumed.
    fn parse_clause_list<T>(
        &mut self,
        clause: &str,
        mut parse_item: impl FnMut(&mut Self) -> Result<T, ParseError>,
    ) -> Result<Vec<T>, ParseError> {
        self.advance();
        self.expect(&TokenKind::LeftParen, &format!("'(' after {clause}"))?;
        let mut items = vec![parse_item(self)?];
        while self.eat(&TokenKind::Comma) {
            items.push(parse_item(self)?);
        }
        self.expect(&TokenKind::RightParen, &format!("',' or ')' in {clause}"))?;
        Ok(items)
    }

    fn parse_sort_key(&mut self) -> Result<SortKey, ParseError> {
        let path = self.parse_plain_path()?;
        let ascending = sort_direction(&self.peek().kind)
            .ok_or_else(|| self.unexpected("ASC or DESC after the sort property"))?;
        self.advance();
        Ok(SortKey { path, ascending })
    }

    /// A key path without collection operators, as used by SORT and DISTINCT.
    fn parse_plain_path(&mut self) -> Result<Vec<String>, ParseError> {
        let mut path = vec![self.expect_identifier("a property name")?];
        while self.eat(&TokenKind::Dot) {
            path.push(self.expect_identifier("a property name after '.'")?);
        }
        Ok(path)
    }

    fn parse_limit(&mut self) -> Result<usize, ParseError> {
        self.advance();
        self.expect(&TokenKind::LeftParen, "'(' after LIMIT")?;
        let limit = match self.peek().kind {
            TokenKind::Literal(Literal::Int(value)) => {
                usize::try_from(value).map_err(|_| self.error_here("LIMIT must not be negative"))?
            }
            _ => return Err(self.unexpected("a non-negative integer in LIMIT")),
        };
        self.advance();
        self.expect(&TokenKind::RightParen, "')' after the LIMIT value")?;
        Ok(limit)
    }

    // ── predicates ──

    /// Parses the `or` rule of the grammar. Parentheses are handled with an
    /// explicit stack of open groups instead of recursion, so stack use stays
    /// flat however deeply the input nests.
    fn parse_filter(&mut self) -> Result<Expr, ParseError> {
        let mut current = Group::new(0, 0);
        let mut enclosing: Vec<Group> = Vec::new();
        loop {
            let negations = self.parse_negations()?;
            if matches!(self.peek().kind, TokenKind::LeftParen) {
                let open = self.advance();
                self.enter_nesting(open.start)?;
                enclosing.push(std::mem::replace(
                    &mut current,
                    Group::new(open.start, negations),
                ));
                continue;
            }
            let atom = self.parse_atom()?;
            self.depth -= negations;
            let mut operand = negate(atom, negations);
            // Attach the operand, closing every group that ends right after it.
            loop {
                current.and_terms.push(operand);
                if self.eat_logical(&TokenKind::AndSymbol, "AND") {
                    break;
                }
                if self.eat_logical(&TokenKind::OrSymbol, "OR") {
                    current.close_and_chain();
                    break;
                }
                let Some(parent) = enclosing.pop() else {
                    return Ok(current.finish());
                };
                if !self.eat(&TokenKind::RightParen) {
                    return Err(self.unexpected(&format!(
                        "')' to close the '(' at offset {}",
                        current.open_offset
                    )));
                }
                let closed = std::mem::replace(&mut current, parent);
                let negations = closed.negations;
                self.depth -= 1 + negations;
                operand = negate(closed.finish(), negations);
            }
        }
    }

    /// Consumes a run of `NOT`/`!` and returns how many there were. Each one
    /// counts towards the nesting limit until its operand is complete.
    fn parse_negations(&mut self) -> Result<usize, ParseError> {
        let mut count = 0;
        loop {
            let offset = self.peek().start;
            if !self.eat_logical(&TokenKind::Bang, "NOT") {
                return Ok(count);
            }
            self.enter_nesting(offset)?;
            count += 1;
        }
    }

    /// A predicate that is not a parenthesised group.
    fn parse_atom(&mut self) -> Result<Expr, ParseError> {
        match &self.peek().kind {
            kind if is_keyword(kind, "TRUEPREDICATE") => {
                self.advance();
                Ok(Expr::True)
            }
            kind if is_keyword(kind, "FALSEPREDICATE") => {
                self.advance();
                Ok(Expr::False)
            }
            TokenKind::Ident(word)
                if clause_keyword(word).is_some()
                    && matches!(self.peek_next().kind, TokenKind::LeftParen) =>
            {
                let clause = word.to_ascii_uppercase();
                Err(self.error_here(format!(
                    "a filter predicate is required before {clause}(...); write e.g. 'TRUEPREDICATE {clause}(...)'"
                )))
            }
            TokenKind::Ident(_)
            | TokenKind::Literal(_)
            | TokenKind::Argument(_)
            | TokenKind::CollectionOperator(_) => self.parse_comparison().map(Expr::Compare),
            _ => Err(self.unexpected(&format!("a predicate{}", self.after_previous()))),
        }
    }

    fn parse_comparison(&mut self) -> Result<Comparison, ParseError> {
        let lhs_context = self.after_previous();
        let lhs = self.parse_operand(&lhs_context)?;
        let operator_start = self.peek().start;
        let op = self.parse_operator()?;
        let case_insensitive = self.parse_case_flag()?;
        let operator_end = self.tokens[self.pos - 1].end;
        let operator_text = self.input.get(operator_start..operator_end).unwrap_or("");
        let rhs = self.parse_operand(&format!(" after '{operator_text}'"))?;
        Ok(Comparison {
            lhs,
            op,
            rhs,
            case_insensitive,
        })
    }

    fn parse_operator(&mut self) -> Result<CompareOp, ParseError> {
        let op = match &self.peek().kind {
            TokenKind::Comparison(op) => Some(*op),
            TokenKind::Ident(word) => keyword_operator(word),
            _ => None,
        };
        match op {
            Some(op) => {
                self.advance();
                Ok(op)
            }
            None => Err(self.unexpected(&format!(
                "a comparison operator (==, !=, <, <=, >, >=, BEGINSWITH, ENDSWITH, CONTAINS or LIKE){}",
                self.after_previous()
            ))),
        }
    }

    /// Optional `[c]` after an operator.
    fn parse_case_flag(&mut self) -> Result<bool, ParseError> {
        if !self.eat(&TokenKind::LeftBracket) {
            return Ok(false);
        }
        match &self.peek().kind {
            kind if is_keyword(kind, "c") => {}
            TokenKind::Ident(other) => {
                return Err(self.error_here(format!(
                    "unsupported comparison option '[{other}]'; only [c] (case-insensitive) is supported"
                )))
            }
            _ => return Err(self.unexpected("'c' in the comparison option '[c]'")),
        }
        self.advance();
        self.expect(
            &TokenKind::RightBracket,
            "']' to close the comparison option",
        )?;
        Ok(true)
    }

    /// `context` completes "expected a value…", e.g. " after '=='".
    fn parse_operand(&mut self, context: &str) -> Result<Operand, ParseError> {
        let operand = match &self.peek().kind {
            TokenKind::Literal(literal) => Operand::Literal(literal.clone()),
            TokenKind::Argument(index) => Operand::Argument(*index),
            TokenKind::Ident(word) => {
                let word = word.clone();
                return self.parse_identifier_operand(&word, context);
            }
            TokenKind::CollectionOperator(_) => {
                return Err(self.error_here(
                    "a collection operator must follow a property, e.g. 'items.@count'",
                ))
            }
            _ => return Err(self.unexpected(&format!("a value{context}"))),
        };
        self.advance();
        Ok(operand)
    }

    fn parse_identifier_operand(
        &mut self,
        word: &str,
        context: &str,
    ) -> Result<Operand, ParseError> {
        if let Some(literal) = keyword_literal(word) {
            self.advance();
            return Ok(Operand::Literal(literal));
        }
        if RESERVED_WORDS.iter().any(|r| r.eq_ignore_ascii_case(word)) {
            return Err(
                self.error_here(format!("expected a value{context}, found keyword '{word}'"))
            );
        }
        self.parse_key_path()
    }

    fn parse_key_path(&mut self) -> Result<Operand, ParseError> {
        let mut path = vec![self.expect_identifier("a property name")?];
        while self.eat(&TokenKind::Dot) {
            let segment = self.advance();
            match segment.kind {
                TokenKind::Ident(name) => path.push(name),
                TokenKind::CollectionOperator(name) => {
                    let op = collection_op_from_name(&name).ok_or_else(|| {
                        ParseError::new(
                            format!("unknown collection operator '@{name}'; expected @count, @size, @min, @max, @sum or @avg"),
                            segment.start,
                        )
                    })?;
                    let aggregate_property = self.parse_aggregate_property(op, &name)?;
                    return Ok(Operand::Property {
                        path,
                        collection_op: Some(op),
                        aggregate_property,
                    });
                }
                _ => {
                    return Err(ParseError::new(
                        format!(
                            "expected a property name after '.', found {}",
                            self.describe(&segment)
                        ),
                        segment.start,
                    ))
                }
            }
        }
        Ok(Operand::Property {
            path,
            collection_op: None,
            aggregate_property: None,
        })
    }

    /// The optional `.prop` after `@min`/`@max`/`@sum`/`@avg`.
    fn parse_aggregate_property(
        &mut self,
        op: CollectionOp,
        op_name: &str,
    ) -> Result<Option<String>, ParseError> {
        if !matches!(self.peek().kind, TokenKind::Dot) {
            return Ok(None);
        }
        if op == CollectionOp::Count {
            return Err(self.error_here(format!("'@{op_name}' cannot be followed by a property")));
        }
        self.advance();
        let property = self.expect_identifier("a property name after the collection operator")?;
        if matches!(self.peek().kind, TokenKind::Dot) {
            return Err(self.error_here(
                "an aggregate may only be followed by a single property name, e.g. 'dogs.@max.age'",
            ));
        }
        Ok(Some(property))
    }
}

// ──────────────────────────────── Tests ────────────────────────────────

#[cfg(test)]
mod tests {
    use super::*;

    // ── helpers ──

    fn query(input: &str) -> ParsedQuery {
        parse(input).unwrap_or_else(|e| panic!("{input:?} should parse, got: {e}"))
    }

    fn filter(input: &str) -> Expr {
        query(input).filter
    }

    fn error(input: &str) -> ParseError {
        match parse(input) {
            Err(e) => e,
            Ok(q) => panic!("{input:?} should fail, got {q:?}"),
        }
    }

    fn comparison(input: &str) -> Comparison {
        match filter(input) {
            Expr::Compare(c) => c,
            other => panic!("{input:?} is not a single comparison: {other:?}"),
        }
    }

    fn rhs_literal(input: &str) -> Literal {
        match comparison(input).rhs {
            Operand::Literal(literal) => literal,
            other => panic!("{input:?} rhs is not a literal: {other:?}"),
        }
    }

    fn prop(path: &str) -> Operand {
        Operand::Property {
            path: path.split('.').map(String::from).collect(),
            collection_op: None,
            aggregate_property: None,
        }
    }

    fn int(value: i64) -> Operand {
        Operand::Literal(Literal::Int(value))
    }

    fn cmp(lhs: Operand, op: CompareOp, rhs: Operand) -> Expr {
        Expr::Compare(Comparison {
            lhs,
            op,
            rhs,
            case_insensitive: false,
        })
    }

    /// `<name> == <value>` as an Expr.
    fn eq(name: &str, value: i64) -> Expr {
        cmp(prop(name), CompareOp::Eq, int(value))
    }

    fn path(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|p| p.to_string()).collect()
    }

    // ── comparisons and operators ──

    #[test]
    fn simple_equality() {
        let parsed = query("name == 'Rex'");
        assert_eq!(
            parsed.filter,
            cmp(
                prop("name"),
                CompareOp::Eq,
                Operand::Literal(Literal::String("Rex".into()))
            )
        );
        assert!(parsed.sort.is_empty());
        assert!(parsed.distinct.is_empty());
        assert_eq!(parsed.limit, None);
    }

    #[test]
    fn symbolic_operators_and_aliases() {
        let cases = [
            ("==", CompareOp::Eq),
            ("=", CompareOp::Eq),
            ("!=", CompareOp::Ne),
            ("<>", CompareOp::Ne),
            ("<", CompareOp::Lt),
            ("<=", CompareOp::Le),
            ("=<", CompareOp::Le),
            (">", CompareOp::Gt),
            (">=", CompareOp::Ge),
            ("=>", CompareOp::Ge),
        ];
        for (symbol, op) in cases {
            assert_eq!(
                filter(&format!("age {symbol} 5")),
                cmp(prop("age"), op, int(5))
            );
            assert_eq!(
                filter(&format!("age{symbol}5")),
                cmp(prop("age"), op, int(5))
            );
        }
    }

    #[test]
    fn string_operators_any_case() {
        let cases = [
            ("BEGINSWITH", CompareOp::BeginsWith),
            ("beginswith", CompareOp::BeginsWith),
            ("ENDSWITH", CompareOp::EndsWith),
            ("EndsWith", CompareOp::EndsWith),
            ("CONTAINS", CompareOp::Contains),
            ("contains", CompareOp::Contains),
            ("LIKE", CompareOp::Like),
            ("like", CompareOp::Like),
        ];
        for (word, op) in cases {
            let c = comparison(&format!("name {word} 'x*'"));
            assert_eq!(c.op, op, "{word}");
            assert!(!c.case_insensitive);
        }
    }

    #[test]
    fn case_insensitive_flag() {
        for input in [
            "name CONTAINS[c] 'a'",
            "name CONTAINS [c] 'a'",
            "name contains[ c ]'a'",
            "name ==[c] 'a'",
            "name !=[C] 'a'",
            "name BEGINSWITH[c] 'a'",
            "name LIKE[c] 'a*'",
        ] {
            assert!(comparison(input).case_insensitive, "{input}");
        }
        assert!(!comparison("name == 'a'").case_insensitive);
    }

    #[test]
    fn literal_on_left_is_kept_in_place() {
        assert_eq!(filter("50 < age"), cmp(int(50), CompareOp::Lt, prop("age")));
        assert_eq!(
            filter("$0 == name"),
            cmp(Operand::Argument(0), CompareOp::Eq, prop("name"))
        );
    }

    // ── logical structure ──

    #[test]
    fn and_binds_tighter_than_or() {
        assert_eq!(
            filter("a == 1 OR b == 2 AND c == 3"),
            Expr::Or(vec![eq("a", 1), Expr::And(vec![eq("b", 2), eq("c", 3)])])
        );
        assert_eq!(
            filter("a == 1 AND b == 2 OR c == 3"),
            Expr::Or(vec![Expr::And(vec![eq("a", 1), eq("b", 2)]), eq("c", 3)])
        );
    }

    #[test]
    fn chains_are_flattened() {
        assert_eq!(
            filter("a == 1 AND b == 2 AND c == 3"),
            Expr::And(vec![eq("a", 1), eq("b", 2), eq("c", 3)])
        );
        assert_eq!(
            filter("a == 1 || b == 2 or c == 3 OR d == 4"),
            Expr::Or(vec![eq("a", 1), eq("b", 2), eq("c", 3), eq("d", 4)])
        );
    }

    #[test]
    fn symbolic_logical_operators() {
        assert_eq!(
            filter("a==1&&b==2||!c==3"),
            Expr::Or(vec![
                Expr::And(vec![eq("a", 1), eq("b", 2)]),
                Expr::Not(Box::new(eq("c", 3)))
            ])
        );
    }

    #[test]
    fn parentheses_override_precedence() {
        assert_eq!(
            filter("(a == 1 OR b == 2) AND c == 3"),
            Expr::And(vec![Expr::Or(vec![eq("a", 1), eq("b", 2)]), eq("c", 3)])
        );
        assert_eq!(filter("((((a == 1))))"), eq("a", 1));
        // Explicit groups are preserved rather than merged into the chain.
        assert_eq!(
            filter("(a == 1 AND b == 2) AND c == 3"),
            Expr::And(vec![Expr::And(vec![eq("a", 1), eq("b", 2)]), eq("c", 3)])
        );
    }

    #[test]
    fn negation() {
        assert_eq!(filter("NOT a == 1"), Expr::Not(Box::new(eq("a", 1))));
        assert_eq!(filter("not(a == 1)"), Expr::Not(Box::new(eq("a", 1))));
        assert_eq!(
            filter("!!a == 1"),
            Expr::Not(Box::new(Expr::Not(Box::new(eq("a", 1)))))
        );
        // NOT binds tighter than AND.
        assert_eq!(
            filter("NOT a == 1 AND b == 2"),
            Expr::And(vec![Expr::Not(Box::new(eq("a", 1))), eq("b", 2)])
        );
        assert_eq!(
            filter("!(a == 1 OR b == 2)"),
            Expr::Not(Box::new(Expr::Or(vec![eq("a", 1), eq("b", 2)])))
        );
    }

    #[test]
    fn true_and_false_predicates() {
        assert_eq!(filter("TRUEPREDICATE"), Expr::True);
        assert_eq!(filter("falsepredicate"), Expr::False);
        assert_eq!(
            filter("TruePredicate AND NOT FALSEPREDICATE"),
            Expr::And(vec![Expr::True, Expr::Not(Box::new(Expr::False))])
        );
    }

    #[test]
    fn whitespace_is_flexible() {
        assert_eq!(
            filter("\n\t a\t==\r\n1\tAND  b ==2  "),
            Expr::And(vec![eq("a", 1), eq("b", 2)])
        );
    }

    // ── literals ──

    #[test]
    fn null_and_bool_literals() {
        for word in ["null", "NULL", "nil", "Nil"] {
            assert_eq!(rhs_literal(&format!("a == {word}")), Literal::Null);
        }
        for (word, value) in [
            ("true", true),
            ("TRUE", true),
            ("false", false),
            ("False", false),
        ] {
            assert_eq!(rhs_literal(&format!("a == {word}")), Literal::Bool(value));
        }
    }

    #[test]
    fn integer_literals() {
        let cases = [
            ("42", 42),
            ("-7", -7),
            ("0", 0),
            ("0x1F", 31),
            ("0XfF", 255),
            ("-0x10", -16),
            ("9223372036854775807", i64::MAX),
            ("-9223372036854775808", i64::MIN),
            ("-0x8000000000000000", i64::MIN),
        ];
        for (text, value) in cases {
            assert_eq!(
                rhs_literal(&format!("a == {text}")),
                Literal::Int(value),
                "{text}"
            );
        }
    }

    #[test]
    fn double_literals() {
        let cases = [
            ("3.5", 3.5),
            ("-0.25", -0.25),
            ("1e10", 1e10),
            ("2.5e-3", 2.5e-3),
            ("1E+2", 100.0),
            ("-1.5e2", -150.0),
        ];
        for (text, value) in cases {
            assert_eq!(
                rhs_literal(&format!("a > {text}")),
                Literal::Double(value),
                "{text}"
            );
        }
    }

    #[test]
    fn string_literals_and_escapes() {
        let cases = [
            (r#"'single'"#, "single"),
            (r#""double""#, "double"),
            (r#"''"#, ""),
            (r#"'it\'s'"#, "it's"),
            (r#""say \"hi\"""#, "say \"hi\""),
            (r#"'a"b'"#, "a\"b"),
            (r#"'back\\slash'"#, "back\\slash"),
            (r#"'line\nnext\ttab'"#, "line\nnext\ttab"),
            (r#"'\u00e9\u0041'"#, "éA"),
            (r#"'\uD83D\uDE00'"#, "😀"),
            ("'héllo 名前 😀'", "héllo 名前 😀"),
            ("'AND OR )('", "AND OR )("),
        ];
        for (text, value) in cases {
            assert_eq!(
                rhs_literal(&format!("name == {text}")),
                Literal::String(value.into()),
                "{text}"
            );
        }
    }

    #[test]
    fn epoch_timestamp_literals() {
        assert_eq!(
            rhs_literal("date > T1700000000:500"),
            Literal::Timestamp {
                seconds: 1_700_000_000,
                nanos: 500
            }
        );
        assert_eq!(
            rhs_literal("date > T-5:-100"),
            Literal::Timestamp {
                seconds: -5,
                nanos: -100
            }
        );
        assert_eq!(
            rhs_literal("date > T0:-1"),
            Literal::Timestamp {
                seconds: 0,
                nanos: -1
            }
        );
        // `T1` without a colon is just a property.
        assert_eq!(comparison("T1 == 2").lhs, prop("T1"));
    }

    #[test]
    fn iso_timestamp_literals() {
        let cases = [
            ("2017-01-20@00:00:00", 1_484_870_400, 0),
            ("1970-01-01@00:00:00", 0, 0),
            ("1969-12-31@23:59:59", -1, 0),
            ("2024-02-29@12:30:45:123", 1_709_209_845, 123),
            ("2024-01-02T03:04:05", 1_704_164_645, 0),
            ("2000-3-1@1:2:3", 951_872_523, 0),
            ("1900-01-01@00:00:00", -2_208_988_800, 0),
        ];
        for (text, seconds, nanos) in cases {
            assert_eq!(
                rhs_literal(&format!("date == {text}")),
                Literal::Timestamp { seconds, nanos },
                "{text}"
            );
        }
    }

    #[test]
    fn binary_literals() {
        let cases: [(&str, &[u8]); 5] = [
            ("B64\"aGVsbG8=\"", b"hello"),
            ("B64'aGVsbG8'", b"hello"),
            ("B64\"\"", b""),
            ("B64\"AP8=\"", &[0x00, 0xFF]),
            ("B64\"+/+/\"", &[0xFB, 0xFF, 0xBF]),
        ];
        for (text, bytes) in cases {
            assert_eq!(
                rhs_literal(&format!("data == {text}")),
                Literal::Binary(bytes.to_vec()),
                "{text}"
            );
        }
        // `B64` alone is an ordinary property name.
        assert_eq!(comparison("B64 == 1").lhs, prop("B64"));
    }

    #[test]
    fn argument_placeholders() {
        assert_eq!(
            filter("a == $0 AND b < $12"),
            Expr::And(vec![
                cmp(prop("a"), CompareOp::Eq, Operand::Argument(0)),
                cmp(prop("b"), CompareOp::Lt, Operand::Argument(12)),
            ])
        );
    }

    // ── key paths ──

    #[test]
    fn link_key_paths() {
        assert_eq!(comparison("owner.name == 'x'").lhs, prop("owner.name"));
        assert_eq!(comparison("a.b.c.d == 1").lhs, prop("a.b.c.d"));
        assert_eq!(comparison("_private_1 == 1").lhs, prop("_private_1"));
    }

    #[test]
    fn keywords_usable_as_property_names() {
        assert_eq!(comparison("limit > 5").lhs, prop("limit"));
        assert_eq!(comparison("sort == 1").lhs, prop("sort"));
        assert_eq!(comparison("desc == 'x'").lhs, prop("desc"));
        assert_eq!(comparison("a.and.true == 1").lhs, prop("a.and.true"));
        assert_eq!(
            filter("a == 1 OR limit == 2"),
            Expr::Or(vec![eq("a", 1), eq("limit", 2)])
        );
    }

    #[test]
    fn count_and_size_operators() {
        for text in ["dogs.@count", "dogs.@size", "dogs.@COUNT"] {
            assert_eq!(
                comparison(&format!("{text} > 2")).lhs,
                Operand::Property {
                    path: path(&["dogs"]),
                    collection_op: Some(CollectionOp::Count),
                    aggregate_property: None
                },
                "{text}"
            );
        }
        assert_eq!(
            comparison("owner.name.@size == 3").lhs,
            Operand::Property {
                path: path(&["owner", "name"]),
                collection_op: Some(CollectionOp::Count),
                aggregate_property: None
            }
        );
    }

    #[test]
    fn aggregate_operators() {
        let cases = [
            ("@min", CollectionOp::Min),
            ("@max", CollectionOp::Max),
            ("@sum", CollectionOp::Sum),
            ("@avg", CollectionOp::Avg),
        ];
        for (name, op) in cases {
            assert_eq!(
                comparison(&format!("owner.dogs.{name}.age > 2")).lhs,
                Operand::Property {
                    path: path(&["owner", "dogs"]),
                    collection_op: Some(op),
                    aggregate_property: Some("age".into())
                }
            );
            assert_eq!(
                comparison(&format!("scores.{name} > 2")).lhs,
                Operand::Property {
                    path: path(&["scores"]),
                    collection_op: Some(op),
                    aggregate_property: None
                }
            );
        }
    }

    // ── trailing clauses ──

    #[test]
    fn sort_clause() {
        let parsed = query("TRUEPREDICATE SORT(age ASC, owner.name DESC)");
        assert_eq!(parsed.filter, Expr::True);
        assert_eq!(
            parsed.sort,
            vec![
                SortKey {
                    path: path(&["age"]),
                    ascending: true
                },
                SortKey {
                    path: path(&["owner", "name"]),
                    ascending: false
                },
            ]
        );
    }

    #[test]
    fn sort_directions_any_case_and_spelling() {
        let parsed = query("a == 1 sort(a ascending, b Descending, c asc, d DESC)");
        let directions: Vec<bool> = parsed.sort.iter().map(|k| k.ascending).collect();
        assert_eq!(directions, [true, false, true, false]);
    }

    #[test]
    fn multiple_sort_clauses_append() {
        let parsed = query("TRUEPREDICATE SORT(a ASC) SORT(b DESC)");
        assert_eq!(
            parsed.sort,
            vec![
                SortKey {
                    path: path(&["a"]),
                    ascending: true
                },
                SortKey {
                    path: path(&["b"]),
                    ascending: false
                },
            ]
        );
    }

    #[test]
    fn distinct_and_limit_clauses() {
        let parsed = query("age > 1 DISTINCT(name, owner.city) LIMIT(10)");
        assert_eq!(
            parsed.distinct,
            vec![path(&["name"]), path(&["owner", "city"])]
        );
        assert_eq!(parsed.limit, Some(10));
        assert_eq!(query("TRUEPREDICATE LIMIT(0)").limit, Some(0));
    }

    #[test]
    fn clauses_in_any_order() {
        let parsed = query("a == 1 AND b == 2 limit(5) DISTINCT(x) SORT(y DESC) LIMIT(3)");
        assert_eq!(parsed.filter, Expr::And(vec![eq("a", 1), eq("b", 2)]));
        assert_eq!(parsed.limit, Some(3), "smallest limit wins");
        assert_eq!(parsed.distinct, vec![path(&["x"])]);
        assert_eq!(
            parsed.sort,
            vec![SortKey {
                path: path(&["y"]),
                ascending: false
            }]
        );
    }

    // ── errors ──

    #[test]
    fn error_display_format() {
        let e = error("name ==");
        assert_eq!(e.offset, 7);
        assert_eq!(
            e.to_string(),
            "invalid query at offset 7: expected a value after '==', found end of input"
        );
        let boxed: Box<dyn std::error::Error> = Box::new(e);
        assert!(boxed.to_string().starts_with("invalid query"));
    }

    #[test]
    fn empty_input_is_an_error() {
        assert_eq!(error("").offset, 0);
        assert!(error("").message.contains("empty query"));
        assert!(error("   \n\t").message.contains("empty query"));
    }

    #[test]
    fn trailing_garbage_is_an_error() {
        assert_eq!(error("a == 1 b == 2").offset, 7);
        assert_eq!(error("a == 1 2").offset, 7);
        assert_eq!(error("TRUEPREDICATE foo").offset, 14);
    }

    #[test]
    fn unterminated_strings() {
        let e = error("name == 'abc");
        assert_eq!(e.offset, 8);
        assert!(e.message.contains("unterminated"));
        assert_eq!(error("name == \"abc'").offset, 8);
        assert_eq!(error(r"name == 'abc\").offset, 12);
        assert_eq!(error("data == B64\"aGVs").offset, 8);
    }

    #[test]
    fn bad_escapes() {
        assert_eq!(error(r"a == 'x\q'").offset, 7);
        assert_eq!(error(r"a == '\u12'").offset, 6);
        assert_eq!(error(r"a == '\uD83D'").offset, 6);
        assert_eq!(error(r"a == '\uDE00'").offset, 6);
    }

    #[test]
    fn bad_arguments() {
        assert_eq!(error("a == $").offset, 5);
        assert_eq!(error("a == $x").offset, 5);
        assert_eq!(error("a == $99999999999999999999999").offset, 5);
        assert_eq!(error("a == $1abc").offset, 7);
    }

    #[test]
    fn bad_numbers() {
        let overflow = error("a == 9223372036854775808");
        assert_eq!(overflow.offset, 5);
        assert!(overflow.message.contains("out of range"));
        assert_eq!(error("a == -9223372036854775809").offset, 5);
        assert_eq!(error("a == 0x8000000000000000").offset, 5);
        assert_eq!(error("a == 0x").offset, 7);
        assert_eq!(error("a == 1.").offset, 7);
        assert_eq!(error("a == 1e").offset, 7);
        assert_eq!(error("a == 1e999").offset, 5);
        assert_eq!(error("a == 12abc").offset, 7);
        assert_eq!(error("a == 1.5.3").offset, 8);
        assert_eq!(error("a == -").offset, 5);
        assert_eq!(error("a == - 1").offset, 5);
    }

    #[test]
    fn bad_timestamps() {
        for input in [
            "d == 2017-13-01@00:00:00",
            "d == 2017-02-29@00:00:00",
            "d == 2017-01-01@24:00:00",
            "d == 2017-01-01@00:60:00",
            "d == 2017-01-01",
            "d == 2017-01-01@00:00",
            "d == 2017-01-01@00:00:00:1234567890",
        ] {
            assert_eq!(error(input).offset, 5, "{input}");
        }
        assert_eq!(error("d == T1:1000000000").offset, 8);
        assert_eq!(error("d == T-1:5").offset, 9);
        assert_eq!(error("d == T99999999999999999999:0").offset, 6);
    }

    #[test]
    fn bad_base64() {
        assert_eq!(error("d == B64\"aGV*\"").offset, 12);
        assert_eq!(error("d == B64\"a\"").offset, 10);
        assert_eq!(error("d == B64\"aG=V\"").offset, 11);
        assert_eq!(error("d == B64\"aGVsb===\"").offset, 14);
    }

    #[test]
    fn unknown_operators() {
        assert_eq!(error("a ~ 1").offset, 2);
        assert_eq!(error("a & b").offset, 2);
        assert_eq!(error("a == 1 | b == 2").offset, 7);
        let missing = error("a IN {1, 2}");
        assert_eq!(missing.offset, 2);
        assert!(missing.message.contains("comparison operator"));
        assert_eq!(error("a === 1").offset, 4);
        assert_eq!(error("a 1").offset, 2);
    }

    #[test]
    fn unbalanced_parentheses() {
        let open = error("(a == 1");
        assert_eq!(open.offset, 7);
        assert!(open.message.contains("')'"));
        assert_eq!(error("a == 1)").offset, 6);
        assert_eq!(error("()").offset, 1);
        assert_eq!(error("(a == 1))").offset, 8);
    }

    #[test]
    fn missing_operands() {
        assert_eq!(error("== 1").offset, 0);
        assert_eq!(error("a == 1 AND").offset, 10);
        assert_eq!(error("a == 1 OR OR b == 2").offset, 10);
        assert_eq!(error("NOT").offset, 3);
        let keyword = error("name == AND b == 1");
        assert_eq!(keyword.offset, 8);
        assert!(keyword.message.contains("keyword"));
    }

    #[test]
    fn bad_case_flags() {
        assert_eq!(error("a ==[d] 'x'").offset, 5);
        assert_eq!(error("a ==[c 'x'").offset, 7);
        assert_eq!(error("a ==[] 'x'").offset, 5);
    }

    #[test]
    fn bad_key_paths() {
        assert_eq!(error("dogs.@count.age > 1").offset, 11);
        assert_eq!(error("dogs.@foo > 1").offset, 5);
        assert_eq!(error("dogs.@max.age.x > 1").offset, 13);
        assert_eq!(error("dogs. > 1").offset, 6);
        assert_eq!(error("@count > 1").offset, 0);
        assert_eq!(error("a.@ > 1").offset, 2);
        assert_eq!(error("a..b == 1").offset, 2);
    }

    #[test]
    fn bad_clauses() {
        let clause_only = error("SORT(age ASC)");
        assert_eq!(clause_only.offset, 0);
        assert!(clause_only.message.contains("TRUEPREDICATE"));
        assert_eq!(error("LIMIT(5)").offset, 0);
        assert_eq!(error("TRUEPREDICATE SORT(age)").offset, 22);
        assert_eq!(error("TRUEPREDICATE SORT()").offset, 19);
        assert_eq!(error("TRUEPREDICATE SORT age ASC").offset, 19);
        assert_eq!(error("TRUEPREDICATE SORT(age ASC").offset, 26);
        assert_eq!(error("TRUEPREDICATE LIMIT(-1)").offset, 20);
        assert_eq!(error("TRUEPREDICATE LIMIT(x)").offset, 20);
        assert_eq!(error("TRUEPREDICATE LIMIT(1.5)").offset, 20);
        assert_eq!(error("TRUEPREDICATE DISTINCT(a,)").offset, 25);
        assert_eq!(error("TRUEPREDICATE SORT(a.@count ASC)").offset, 21);
        assert_eq!(error("TRUEPREDICATE SORT(a ASC) AND b == 1").offset, 26);
    }

    #[test]
    fn non_ascii_outside_strings_is_an_error() {
        let e = error("名前 == 1");
        assert_eq!(e.offset, 0);
        assert!(e.message.contains('名'));
        assert_eq!(error("a == 1 ∧ b == 2").offset, 7);
        assert_eq!(error("a == 1é").offset, 6);
    }

    // ── robustness ──

    #[test]
    fn deep_parentheses_are_rejected_without_overflow() {
        let hostile = "(".repeat(100_000);
        let e = error(&hostile);
        assert!(e.message.contains("nested too deeply"), "{e}");
        assert_eq!(e.offset, MAX_NESTING_DEPTH);

        let balanced = format!("{}a == 1{}", "(".repeat(100_000), ")".repeat(100_000));
        assert!(error(&balanced).message.contains("nested too deeply"));
    }

    #[test]
    fn deep_negation_is_rejected_without_overflow() {
        assert!(error(&"!".repeat(100_000))
            .message
            .contains("nested too deeply"));
        let nots = format!("{}a == 1", "NOT ".repeat(100_000));
        assert!(error(&nots).message.contains("nested too deeply"));
    }

    #[test]
    fn nesting_up_to_the_limit_is_accepted() {
        let half = MAX_NESTING_DEPTH / 2;
        let input = format!(
            "{}{}a == 1{}",
            "!".repeat(half),
            "(".repeat(MAX_NESTING_DEPTH - half),
            ")".repeat(MAX_NESTING_DEPTH - half)
        );
        let mut expr = filter(&input);
        for _ in 0..half {
            expr = match expr {
                Expr::Not(inner) => *inner,
                other => panic!("expected Not, got {other:?}"),
            };
        }
        assert_eq!(expr, eq("a", 1));
        let one_more = format!("!{input}");
        assert!(error(&one_more).message.contains("nested too deeply"));
    }

    #[test]
    fn deeply_nested_groups_build_a_deep_tree() {
        // Each level adds a real And node, so the tree is as deep as the input.
        let depth = MAX_NESTING_DEPTH;
        let input = format!(
            "{}a == 1{}",
            "(".repeat(depth),
            ") AND b == 2".repeat(depth)
        );
        let mut expr = filter(&input);
        for _ in 0..depth - 1 {
            expr = match expr {
                Expr::And(mut terms) if terms.len() == 2 => {
                    assert_eq!(terms[1], eq("b", 2));
                    terms.swap_remove(0)
                }
                other => panic!("expected a two-term And, got {other:?}"),
            };
        }
        assert_eq!(expr, Expr::And(vec![eq("a", 1), eq("b", 2)]));
    }

    const SAMPLE_QUERIES: [&str; 8] = [
        "name ==[c] 'Rex' AND (age >= 3 OR NOT owner.name BEGINSWITH \"J\\u00e9\")",
        "dogs.@max.age > 2.5e-3 && dogs.@count != $12 || score < -0x1F",
        "date > T1700000000:500 AND born == 2017-01-20@00:00:00:123",
        "data == B64\"aGVsbG8=\" AND flag == true AND x == nil",
        "TRUEPREDICATE SORT(age ASC, owner.name DESC) DISTINCT(a, b.c) LIMIT(10)",
        "name == 'héllo 名前' OR !(x =< 5) AND y => 6 AND z <> 7",
        "50 < age AND name LIKE[c] '*x?' AND city ENDSWITH 'a'",
        "((a == 1) OR (b CONTAINS 'q')) AND NOT FALSEPREDICATE",
    ];

    #[test]
    fn sample_queries_parse() {
        for input in SAMPLE_QUERIES {
            query(input);
        }
    }

    #[test]
    fn every_prefix_and_suffix_is_handled_without_panic() {
        for input in SAMPLE_QUERIES {
            for (index, _) in input.char_indices() {
                let _ = parse(&input[..index]);
                let _ = parse(&input[index..]);
            }
        }
    }

    #[test]
    fn random_fragment_soup_never_panics() {
        const FRAGMENTS: [&str; 44] = [
            "a",
            "b.c",
            ".",
            "==",
            "=",
            "!",
            "<",
            ">",
            "&",
            "|",
            "[c]",
            "[",
            "]",
            "(",
            ")",
            ",",
            "AND",
            "OR",
            "NOT",
            "'x",
            "'",
            "\"",
            "\\",
            "\\u",
            "$",
            "$1",
            "1",
            "-",
            "0x",
            "1e",
            "2.5",
            "@count",
            "@max",
            "@",
            "T1:2",
            "T",
            "2024-01-0",
            "@0:0:0",
            "B64\"",
            "SORT(",
            "LIMIT(",
            "é",
            "名",
            " ",
        ];
        // A fixed-seed LCG keeps the test deterministic.
        let mut state: u64 = 0x5eed;
        let mut next = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as usize
        };
        for _ in 0..20_000 {
            let length = next() % 12;
            let input: String = (0..length)
                .map(|_| FRAGMENTS[next() % FRAGMENTS.len()])
                .collect();
            if let Err(e) = parse(&input) {
                assert!(e.offset <= input.len(), "{input:?}: {e}");
            }
        }
    }
}
