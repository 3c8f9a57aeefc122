/* The lina lexer: keywords, identifiers, numbers, operators; `#` starts a comment. */
%option reentrant noyywrap nounput noinput nodefault never-interactive batch
%option prefix="lina_yy"

%{
#include <cstdlib>
#include <string>

#include "dsl/parse_context.h"
#include "parser.hh"

using Parser = lina::dsl::Parser;

#define YY_DECL Parser::symbol_type lina_yylex(yyscan_t yyscanner, lina::dsl::ParseContext& ctx)

// Every token's range starts at the current position and ends just after its last character.
#define YY_USER_ACTION                                              \
  ctx.token.begin = lina::SourceLoc{ctx.file, ctx.line, ctx.col};     \
  ctx.col += static_cast<uint32_t>(yyleng);                         \
  ctx.token.end = lina::SourceLoc{ctx.file, ctx.line, ctx.col};
#define LOC ctx.token
%}

IDENT   [A-Za-z_][A-Za-z0-9_]*
DIGITS  [0-9]+
EXP     [eE][+-]?{DIGITS}

%%

[ \t\r]+            {}
"#"[^\n]*           {}
\n                  { ++ctx.line; ctx.col = 1; }

"recurrence"        return Parser::make_RECURRENCE(LOC);
"dims"              return Parser::make_DIMS(LOC);
"in"                return Parser::make_IN(LOC);
"state"             return Parser::make_STATE(LOC);
"out"               return Parser::make_OUT(LOC);
"param"             return Parser::make_PARAM(LOC);
"const"             return Parser::make_CONST(LOC);
"gate"              return Parser::make_GATE(LOC);
"chunk"             return Parser::make_CHUNK(LOC);
"tune"              return Parser::make_TUNE(LOC);

{IDENT}             return Parser::make_IDENT(std::string(yytext, yyleng), LOC);
{DIGITS}("."[0-9]*)?{EXP}? |
"."{DIGITS}{EXP}?   return Parser::make_NUMBER(std::string(yytext, yyleng), LOC);

"**"                return Parser::make_POW(LOC);
"+"                 return Parser::make_PLUS(LOC);
"-"                 return Parser::make_MINUS(LOC);
"*"                 return Parser::make_STAR(LOC);
"/"                 return Parser::make_SLASH(LOC);
"@"                 return Parser::make_AT(LOC);
"="                 return Parser::make_ASSIGN(LOC);
"("                 return Parser::make_LPAREN(LOC);
")"                 return Parser::make_RPAREN(LOC);
"["                 return Parser::make_LBRACKET(LOC);
"]"                 return Parser::make_RBRACKET(LOC);
"{"                 return Parser::make_LBRACE(LOC);
"}"                 return Parser::make_RBRACE(LOC);
","                 return Parser::make_COMMA(LOC);
":"                 return Parser::make_COLON(LOC);
";"                 return Parser::make_SEMI(LOC);

.                   {
                      unsigned char c = static_cast<unsigned char>(yytext[0]);
                      std::string shown = (c >= 0x20 && c < 0x7f) ? std::string("'") + yytext[0] + "'"
                                                                  : "byte 0x" + std::string(1, "0123456789abcdef"[c >> 4]) +
                                                                        std::string(1, "0123456789abcdef"[c & 15]);
                      ctx.diags.error(LOC, "unexpected character " + shown +
                                               "; expected an identifier, a number, an operator "
                                               "(+ - * / ** @ =) or punctuation ({ } ( ) [ ] , : ;)");
                      return Parser::make_YYerror(LOC);
                    }
<<EOF>>             return Parser::make_END(LOC);

%%

namespace lina::dsl {

// Runs the scanner and parser over one buffer. Defined here because only this file sees Flex's
// buffer functions.
bool parseBuffer(ParseContext& ctx) {
  yyscan_t scanner;
  lina_yylex_init(&scanner);
  std::string_view text = ctx.sources.text(ctx.file);
  YY_BUFFER_STATE buffer = lina_yy_scan_bytes(text.data(), static_cast<int>(text.size()), scanner);
  Parser parser(scanner, ctx);
  int status = parser.parse();
  lina_yy_delete_buffer(buffer, scanner);
  lina_yylex_destroy(scanner);
  return status == 0 && !ctx.diags.hasErrors();
}

}  // namespace lina::dsl
