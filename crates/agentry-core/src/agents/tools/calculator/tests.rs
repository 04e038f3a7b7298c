//! Table-driven tests of the calculator and of question extraction.

use super::{CalcError, evaluate, extract};

const SQRT2: &str = "1.41421356237309504880168872421";

/// (input, exact, decimal, approximate)
const VALUES: &[(&str, &str, Option<&str>, bool)] = &[
    // Integer arithmetic and precedence.
    ("1 + 2 * 3", "7", None, false),
    ("(1 + 2) * 3", "9", None, false),
    ("10 - 4 - 3", "3", None, false),
    ("100 / 8 * 2", "25", None, false),
    ("2^10", "1024", None, false),
    ("2 ** 10", "1024", None, false),
    ("2^3^2", "512", None, false),
    ("-2^2", "-4", None, false),
    ("(-2)^2", "4", None, false),
    ("-3 + -4", "-7", None, false),
    ("2*-3", "-6", None, false),
    ("12*7+3", "87", None, false),
    // Big integers.
    ("2^100", "1267650600228229401496703205376", None, false),
    ("30!", "265252859812191058636308480000000", None, false),
    ("123456789012345678901234567890 * 987654321098765432109876543210", "121932631137021795226185032733622923332237463801111263526900", None, false),
    ("6.02e23", "602000000000000000000000", None, false),
    // Fractions and exact decimals.
    ("3/4 + 1/6", "11/12", Some("0.916666666666666666666666666667…"), false),
    ("0.1 + 0.2", "3/10", Some("0.3"), false),
    ("0.75", "3/4", Some("0.75"), false),
    ("-7/2", "-7/2", Some("-3.5"), false),
    ("1/3", "1/3", Some("0.333333333333333333333333333333…"), false),
    ("1e-3", "1/1000", Some("0.001"), false),
    ("1.5 + 1.5", "3", None, false),
    // Powers.
    ("(2/3)^-2", "9/4", Some("2.25"), false),
    ("2^-1", "1/2", Some("0.5"), false),
    ("2^-100", "1/1267650600228229401496703205376", Some("7.88860905221011805411728565283e-31…"), false),
    ("0^0", "1", None, false),
    ("(-1)^1001", "-1", None, false),
    // Roots: exact when rational, otherwise 30 significant digits, rounded.
    ("sqrt(144)", "12", None, false),
    ("sqrt(9/4)", "3/2", Some("1.5"), false),
    ("8^(1/3)", "2", None, false),
    ("27^(2/3)", "9", None, false),
    ("4^0.5", "2", None, false),
    ("cbrt(-8)", "-2", None, false),
    ("(-8)^(1/3)", "-2", None, false),
    ("root(32, 5)", "2", None, false),
    ("√16", "4", None, false),
    ("sqrt(2)", SQRT2, None, true),
    ("2^(1/2)", SQRT2, None, true),
    ("cbrt(2)", "1.25992104989487316476721060728", None, true),
    ("cbrt(-2)", "-1.25992104989487316476721060728", None, true),
    ("sqrt(2)^2", "2", None, true),
    // Cancellation below the carried precision is an approximate zero.
    ("sqrt(2)^2 - 2", "0", None, true),
    ("pi", "3.14159265358979323846264338328", None, true),
    ("2pi", "6.28318530717958647692528676656", None, true),
    ("0*pi", "0", None, false),
    // Percent, factorial, gcd/lcm, mod, abs, implicit multiplication.
    ("15%", "3/20", Some("0.15"), false),
    ("15/100*80", "12", None, false),
    ("15% * 80", "12", None, false),
    ("10!", "3628800", None, false),
    ("0!", "1", None, false),
    ("3!!", "720", None, false),
    ("gcd(12, 18)", "6", None, false),
    ("gcd(12, 18, 27)", "3", None, false),
    ("lcm(4, 6)", "12", None, false),
    ("17 mod 5", "2", None, false),
    ("-7 mod 3", "2", None, false),
    ("abs(-5/2)", "5/2", Some("2.5"), false),
    ("2(3+4)", "14", None, false),
    ("(1+2)(3+4)", "21", None, false),
    ("2sqrt(9)", "6", None, false),
    ("3²", "9", None, false),
    ("6 × 7 ÷ 2", "21", None, false),
];

#[test]
fn values() {
    for (input, exact, decimal, approximate) in VALUES {
        let got = evaluate(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(got.exact, *exact, "exact of {input}");
        assert_eq!(got.decimal.as_deref(), *decimal, "decimal of {input}");
        assert_eq!(got.approximate, *approximate, "approximate of {input}");
    }
}

/// (input, exact, decimal, approximate)
const EQUATIONS: &[(&str, &str, Option<&str>, bool)] = &[
    ("2x + 3 = 11", "x = 4", None, false),
    ("2x = 7", "x = 7/2", Some("x = 3.5"), false),
    ("3x - 5 = x + 7", "x = 6", None, false),
    ("x/3 + 1 = 2", "x = 3", None, false),
    ("3y = 1", "y = 1/3", Some("y = 0.333333333333333333333333333333…"), false),
    ("(x-2)(x-3) = 0", "x = 2 or x = 3", None, false),
    ("x^2 - 6x + 9 = 0", "x = 3", None, false),
    ("2x^2 + 3x - 2 = 0", "x = -2 or x = 1/2", Some("x = -2 or x = 0.5"), false),
    ("y^2 = 9", "y = -3 or y = 3", None, false),
    ("x^2 = 2", "x = -√2 or x = √2", Some("x ≈ -1.41421356237309504880168872421 or x ≈ 1.41421356237309504880168872421"), false),
    ("x^2 - 5x + 3 = 0", "x = (5 - √13)/2 or x = (5 + √13)/2", Some("x ≈ 0.697224362268005353440389366265 or x ≈ 4.30277563773199464655961063374"), false),
    ("x^2 - 2x - 11 = 0", "x = 1 - 2√3 or x = 1 + 2√3", Some("x ≈ -2.46410161513775458705489268301 or x ≈ 4.46410161513775458705489268301"), false),
    ("4x^2 = 5", "x = -√5/2 or x = √5/2", Some("x ≈ -1.11803398874989484820458683437 or x ≈ 1.11803398874989484820458683437"), false),
    ("x^2 + 1 = 0", "no real solution", None, false),
    ("x^3 - x^3 + x = 1", "x = 1", None, false),
    ("x = sqrt(2)", "x ≈ 1.41421356237309504880168872421", None, true),
    ("x^2 - 2sqrt(2)x + 2 = 0", "x ≈ 1.41421356237309504880168872421", None, true),
    ("sqrt(2)^2 = 2", "every x is a solution", None, true),
    ("x + 1 = x + 1", "every x is a solution", None, false),
    ("0 = 0", "every x is a solution", None, false),
    ("x + 1 = x + 2", "no solution", None, false),
    ("1 = 2", "no solution", None, false),
];

#[test]
fn equations() {
    for (input, exact, decimal, approximate) in EQUATIONS {
        let got = evaluate(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(got.exact, *exact, "exact of {input}");
        assert_eq!(got.decimal.as_deref(), *decimal, "decimal of {input}");
        assert_eq!(got.approximate, *approximate, "approximate of {input}");
    }
}

#[test]
fn normalised_expression() {
    let cases = [
        ("3/4+1/6", "3/4 + 1/6"),
        ("2x + 3 = 11", "2*x + 3 = 11"),
        ("(2/3)^-2", "(2/3)^-2"),
        ("-2^2", "-2^2"),
        ("(-2)^2", "(-2)^2"),
        ("2^3^2", "2^3^2"),
        ("(2^3)^2", "(2^3)^2"),
        ("1 - (2 - 3)", "1 - (2 - 3)"),
        ("√2·3", "sqrt(2)*3"),
        ("17 MOD 5", "17 mod 5"),
    ];
    for (input, normalised) in cases {
        let got = evaluate(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(got.expression, normalised, "{input}");
        // The normalised text means the same thing.
        let again = evaluate(&got.expression).unwrap_or_else(|e| panic!("{normalised}: {e}"));
        assert_eq!(again.exact, got.exact, "{input}");
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Parse,
    DivisionByZero,
    Domain,
    TooLarge,
    Unsupported,
}

fn kind(e: &CalcError) -> &'static str {
    match e {
        CalcError::Parse(_) => "Parse",
        CalcError::DivisionByZero => "DivisionByZero",
        CalcError::Domain(_) => "Domain",
        CalcError::TooLarge(_) => "TooLarge",
        CalcError::Unsupported(_) => "Unsupported",
    }
}

const ERRORS: &[(&str, Kind)] = &[
    ("1/0", Kind::DivisionByZero),
    ("5 / (2 - 2)", Kind::DivisionByZero),
    ("1 mod 0", Kind::DivisionByZero),
    ("sqrt(-1)", Kind::Domain),
    ("root(-16, 4)", Kind::Domain),
    ("0^-1", Kind::Domain),
    ("(-8)^(1/2)", Kind::Domain),
    ("(-2)^(1/3)", Kind::Domain),
    ("(-1)!", Kind::Domain),
    ("2.5!", Kind::Domain),
    ("7.5 mod 2", Kind::Domain),
    ("gcd(1.5, 3)", Kind::Domain),
    ("foo + 1", Kind::Parse),
    ("x + 1", Kind::Parse),
    ("1/2x", Kind::Parse),
    ("(1 + 2", Kind::Parse),
    ("1 + 2)", Kind::Parse),
    ("", Kind::Parse),
    ("   ", Kind::Parse),
    ("2 3", Kind::Parse),
    ("1 +", Kind::Parse),
    ("1 = 2 = 3", Kind::Parse),
    ("sqrt 4", Kind::Parse),
    ("2 $ 3", Kind::Parse),
    ("10^10^10", Kind::TooLarge),
    ("9^9^9", Kind::TooLarge),
    ("5001!", Kind::TooLarge),
    ("(1/3)^1000000", Kind::TooLarge),
    ("1e999999999", Kind::TooLarge),
    ("sin(30)", Kind::Unsupported),
    ("2^sqrt(2)", Kind::Unsupported),
    ("x^3 = 8", Kind::Unsupported),
    ("1/x = 2", Kind::Unsupported),
    ("x + y = 3", Kind::Unsupported),
    ("2^x = 8", Kind::Unsupported),
    ("sqrt(x) = 3", Kind::Unsupported),
    ("(x+1)^20 = 0", Kind::Unsupported),
];

#[test]
fn errors() {
    for (input, expected) in ERRORS {
        let got = evaluate(input);
        let Err(e) = got else { panic!("{input}: expected {expected:?}, got {got:?}") };
        assert_eq!(kind(&e), format!("{expected:?}"), "{input}: {e}");
    }
}

#[test]
fn error_messages() {
    assert_eq!(evaluate("x + 1").err().map(|e| e.to_string()), Some("cannot parse the expression: unknown name 'x' (a variable needs an equation with '=')".to_string()));
    assert_eq!(evaluate("1/0").err().map(|e| e.to_string()), Some("division by zero".into()));
    assert_eq!(evaluate("sqrt(-4)").err().map(|e| e.to_string()), Some("square root of a negative number".into()));
    assert_eq!(evaluate("x^3 + x = 1").err().map(|e| e.to_string()), Some("equations of degree 3 are not supported".into()));
}

#[test]
fn limits() {
    assert!(matches!(evaluate(&"1+".repeat(600)), Err(CalcError::TooLarge(_))));
    let deep = format!("{}1{}", "(".repeat(200), ")".repeat(200));
    assert!(matches!(evaluate(&deep), Err(CalcError::Parse(_))));
    let negations = format!("{}1", "-".repeat(400));
    assert!(matches!(evaluate(&negations), Err(CalcError::Parse(_))));
    // A long flat sum nests to the left; it stays within the tree-depth limit.
    let ones = vec!["1"; 499].join("+");
    assert_eq!(evaluate(&ones).map(|e| e.exact), Ok("499".to_string()));
    let bangs = format!("1{}", "!".repeat(600));
    assert!(matches!(evaluate(&bangs), Err(CalcError::Parse(_))));
    // Up to the limits, big results are fine.
    let big = evaluate("2^300000").map(|e| e.exact.len());
    assert_eq!(big, Ok(90309));
    assert!(evaluate("1000!").is_ok());
    assert!(matches!(evaluate("2^400000"), Err(CalcError::TooLarge(_))));
}

#[test]
fn serialises() {
    let e = evaluate("3/4").map(|e| (e.expression, e.exact, e.decimal, e.approximate));
    assert_eq!(e, Ok(("3/4".into(), "3/4".into(), Some("0.75".into()), false)));
}

const EXTRACT_YES: &[(&str, &str)] = &[
    ("What is 3/4 + 1/6?", "3/4 + 1/6"),
    ("Solve 2x + 3 = 11", "2x + 3 = 11"),
    ("solve for x: 3x - 5 = x + 7", "3x - 5 = x + 7"),
    ("Solve x^2 = 2 for x.", "x^2 = 2"),
    ("Find x if 2x + 1 = 7", "2x + 1 = 7"),
    ("what's the square root of 144", "sqrt(144)"),
    ("What’s the square root of 144?", "sqrt(144)"),
    ("5 squared", "5^2"),
    ("2 to the power of 100", "2^100"),
    ("15% of 80", "15/100*80"),
    ("what is 15 percent of 80?", "15/100*80"),
    ("12 times 7 plus 3", "12*7+3"),
    ("what is 100 divided by 8", "100/8"),
    ("cube root of 27", "cbrt(27)"),
    ("10 factorial", "10!"),
    ("10!", "10!"),
    ("What is the factorial of 10?", "10!"),
    ("calculate 1,000,000 times 3", "1000000*3"),
    ("how much is 12 x 7?", "12*7"),
    ("what is 17 mod 5", "17 mod 5"),
    ("Compute (1+2)(3+4)", "(1+2)(3+4)"),
    ("what is 1/0", "1/0"),
];

const EXTRACT_NO: &[&str] = &[
    "tell me a joke",
    "write a python function",
    "what is the capital of France",
    "how are you 2day",
    "what is 1984?",
    "what is x",
    "",
    "Who won the 2018 world cup?",
    "iphone 15 review",
    "give me 5 ideas for dinner",
    "top 10 movies of 2023",
];

#[test]
fn extraction() {
    for (question, expected) in EXTRACT_YES {
        assert_eq!(extract(question).as_deref(), Some(*expected), "{question}");
    }
    for question in EXTRACT_NO {
        assert_eq!(extract(question), None, "{question}");
    }
}
