//! The compositions that should not compile, and what the compiler says about each: the
//! messages on `Classify` and `RetryRules` name the fix (write them over `BoxError`), and the
//! `.stderr` files beside each case pin them. Regenerate with `TRYBUILD=overwrite` after a
//! change to those diagnostics or a compiler upgrade, and read them before committing.

#[test]
fn mistakes_fail_to_compile_with_a_message_naming_the_fix() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/compile_fail/*.rs");
}
